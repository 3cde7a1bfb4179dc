"""Widefield imaging optics: pupil, PSF and OTF from NA, wavelength and pixel size.

Scalar model: the coherent pupil is a disc of radius NA/λ (cycles/nm) with a defocus phase
``exp(i·2π·z·sqrt((n/λ)² − ρ²))``; the incoherent PSF is |FT(pupil)|² and the OTF its
Fourier transform, i.e. the pupil's autocorrelation, whose support ends at 2·NA/λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft


@dataclass(frozen=True)
class Optics:
    """Objective and camera geometry."""

    na: float = 1.49
    n_immersion: float = 1.518
    magnification: float = 100.0
    camera_pixel_um: float = 6.5

    @property
    def pixel_nm(self) -> float:
        """Camera pixel size at the sample plane."""
        return self.camera_pixel_um * 1000.0 / self.magnification


def _radial_freq(shape: tuple[int, int], pixel_nm: float, rfft: bool) -> np.ndarray:
    fy = np.fft.fftfreq(shape[0], d=pixel_nm)
    fx = np.fft.rfftfreq(shape[1], d=pixel_nm) if rfft else np.fft.fftfreq(shape[1], d=pixel_nm)
    return np.hypot(fy[:, None], fx[None, :])


def widefield_fwhm_nm(na: float, wavelength_nm: float) -> float:
    """Lateral FWHM of the widefield PSF (≈ 0.51 λ/NA)."""
    return 0.51 * wavelength_nm / na


def _analytic_otf(rho: np.ndarray, cutoff: float) -> np.ndarray:
    """In-focus incoherent OTF of a circular pupil."""
    r = np.clip(rho / cutoff, 0.0, 1.0)
    return ((2 / np.pi) * (np.arccos(r) - r * np.sqrt(1 - r * r))).astype(np.float32)


def psf_2d(
    shape: tuple[int, int],
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    n_immersion: float = 1.518,
    defocus_nm: float = 0.0,
) -> np.ndarray:
    """Centred intensity PSF on a grid of ``shape`` with ``pixel_nm`` pixels, sum 1."""
    rho = _radial_freq(shape, pixel_nm, rfft=False)
    kmax = na / wavelength_nm
    pupil = (rho <= kmax).astype(np.complex64)
    if defocus_nm:
        kz = np.sqrt(np.clip((n_immersion / wavelength_nm) ** 2 - rho**2, 0.0, None))
        pupil *= np.exp(2j * np.pi * defocus_nm * kz).astype(np.complex64)
    amplitude = sfft.ifft2(pupil, workers=-1)
    psf = np.abs(amplitude) ** 2
    psf = np.fft.fftshift(psf).astype(np.float32)
    return psf / psf.sum()


def otf_2d(
    shape: tuple[int, int],
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    n_immersion: float = 1.518,
    defocus_nm: float = 0.0,
) -> np.ndarray:
    """Incoherent OTF on the rfft2 grid of an image of ``shape``: shape (H, W//2+1).

    In focus it is real (float32, analytic); defocused it is complex64 (numerical pupil
    autocorrelation). Normalised to 1 at DC; zero beyond 2·NA/λ.
    """
    if not defocus_nm:
        return _analytic_otf(_radial_freq(shape, pixel_nm, rfft=True), 2 * na / wavelength_nm)
    psf = np.fft.ifftshift(psf_2d(shape, pixel_nm, na, wavelength_nm, n_immersion, defocus_nm))
    otf = sfft.rfft2(psf, workers=-1)
    otf /= otf[0, 0]
    otf[_radial_freq(shape, pixel_nm, rfft=True) > 2 * na / wavelength_nm] = 0
    return otf.astype(np.complex64)


def blur(image: np.ndarray, otf: np.ndarray) -> np.ndarray:
    """Convolve a real image with the PSF whose rfft-layout OTF is ``otf``."""
    spectrum = sfft.rfft2(image.astype(np.float32, copy=False), workers=-1)
    spectrum *= otf
    return sfft.irfft2(spectrum, s=image.shape, workers=-1).astype(np.float32, copy=False)


def full_otf(otf_rfft: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The full (fft2-layout) OTF of a real PSF from its rfft2-layout half."""
    psf = sfft.irfft2(otf_rfft, s=shape, workers=-1)
    return sfft.fft2(psf, workers=-1).astype(np.complex64)
