"""Blind estimation of 2D-SIM pattern parameters from the raw frames.

Per angle: the fringe wavevector k is the sharp peak the sample's mean brightness makes at
±k in the raw spectra (found in an annulus, refined to sub-bin precision with zoomed DFTs);
each frame's phase is the argument of its spectrum's autocorrelation at k, computed as
``Σ_r d(r)²·e^{−i2πk·r}`` (Wicker et al. 2013); the modulation depth and a global phase
correction come from the overlap of the separated side band with the widefield band.
Coordinates: r is measured from pixel (0, 0), the FFT's origin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from srlive.recon.otf import frequency_grid, widefield_otf

EDGE_PX = 24  # taper width used against FFT edge artefacts


@dataclass(frozen=True)
class SIMParameters:
    """Fringe wavevectors (cycles/nm), per-frame phases (rad) and modulation per angle."""

    k: tuple[tuple[float, float], ...]
    phases: np.ndarray
    modulation: np.ndarray

    @property
    def n_angles(self) -> int:
        return len(self.k)

    @property
    def period_nm(self) -> np.ndarray:
        return np.array([1.0 / np.hypot(ky, kx) for ky, kx in self.k])

    @property
    def angles_deg(self) -> np.ndarray:
        return np.array([np.degrees(np.arctan2(ky, kx)) % 180.0 for ky, kx in self.k])

    def with_phases(self, phases: np.ndarray, modulation: np.ndarray) -> SIMParameters:
        return SIMParameters(self.k, np.asarray(phases, float), np.asarray(modulation, float))


def edge_taper(shape: tuple[int, int], edge_px: int = EDGE_PX) -> np.ndarray:
    """A window that is 1 inside and falls smoothly (cos²) to 0 over ``edge_px`` at the border."""

    def ramp(n: int) -> np.ndarray:
        w = np.ones(n, np.float32)
        e = min(edge_px, n // 4)
        if e > 0:
            t = (np.arange(e) + 0.5) / e
            w[:e] = np.sin(np.pi / 2 * t) ** 2
            w[-e:] = w[:e][::-1]
        return w

    return np.outer(ramp(shape[0]), ramp(shape[1]))


def prepare_frames(raw: np.ndarray, offset_adu: float, taper: np.ndarray) -> np.ndarray:
    """Offset-subtracted float32 frames, faded towards their mean at the borders."""
    frames = np.asarray(raw, np.float32).reshape(-1, *raw.shape[-2:]) - np.float32(offset_adu)
    means = frames.mean(axis=(1, 2), keepdims=True)
    return means + (frames - means) * taper


def _zoom_dft(image: np.ndarray, fy: np.ndarray, fx: np.ndarray, pixel_nm: float) -> np.ndarray:
    """DTFT of ``image`` at frequencies (cycles/nm) fy × fx; origin at pixel (0, 0)."""
    y = np.arange(image.shape[0]) * pixel_nm
    x = np.arange(image.shape[1]) * pixel_nm
    ay = np.exp(-2j * np.pi * fy[:, None] * y[None, :])
    ax = np.exp(-2j * np.pi * x[:, None] * fx[None, :])
    return ay @ image @ ax


def _refine_k(frames: np.ndarray, k0: tuple[float, float], pixel_nm: float) -> tuple[float, float]:
    """Sub-bin peak of Σ|DTFT|² over the frames of one angle, by successive zooms."""
    h, w = frames.shape[-2:]
    step = np.array([1.0 / (h * pixel_nm), 1.0 / (w * pixel_nm)])
    ky, kx = k0
    centred = frames - frames.mean(axis=(1, 2), keepdims=True)
    for _ in range(6):
        gy = ky + step[0] * np.linspace(-1, 1, 7)
        gx = kx + step[1] * np.linspace(-1, 1, 7)
        power = sum(np.abs(_zoom_dft(f, gy, gx, pixel_nm)) ** 2 for f in centred)
        iy, ix = np.unravel_index(np.argmax(power), power.shape)
        ky, kx = gy[iy], gx[ix]
        step /= 3
    return float(ky), float(kx)


def _canonical(ky: float, kx: float) -> tuple[float, float]:
    """Choose the sign of k so that its angle lies in [0°, 180°)."""
    angle = np.arctan2(ky, kx)
    if angle < -1e-12 or angle >= np.pi - 1e-12:
        return -ky, -kx
    return ky, kx


def find_wavevectors(
    frames: np.ndarray,
    n_angles: int,
    n_phases: int,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    search_period_nm: tuple[float, float] = (150.0, 300.0),
) -> list[tuple[float, float]]:
    """The fringe wavevector of each angle, from the raw data alone."""
    h, w = frames.shape[-2:]
    fy, fx = frequency_grid((h, w), pixel_nm)
    rho = np.hypot(fy, fx)
    cutoff = 2 * na / wavelength_nm
    annulus = (rho >= 1 / search_period_nm[1]) & (rho <= min(1 / search_period_nm[0], cutoff))
    upper = (fy > 0) | ((fy == 0) & (fx > 0))
    mask = annulus & upper
    ks = []
    for a in range(n_angles):
        group = frames[a * n_phases : (a + 1) * n_phases]
        spectra = sfft.fft2(group - group.mean(axis=(1, 2), keepdims=True), workers=-1)
        power = (np.abs(spectra) ** 2).sum(axis=0)
        # whiten by the radial mean so the sample's own spectrum slope does not bias the peak
        bins = np.minimum((rho / rho.max() * 200).astype(int), 199)
        radial = np.bincount(bins.ravel(), power.ravel(), 200) / np.maximum(
            np.bincount(bins.ravel(), minlength=200), 1
        )
        score = np.where(mask, power / (radial[bins] + 1e-12), 0.0)
        iy, ix = np.unravel_index(np.argmax(score), score.shape)
        k = _refine_k(group, (float(fy[iy, 0]), float(fx[0, ix])), pixel_nm)
        ks.append(_canonical(*k))
    return ks


def frame_phases(frames: np.ndarray, k: tuple[float, float], pixel_nm: float) -> np.ndarray:
    """Phase of each frame's fringe: arg of its autocorrelation at k."""
    return np.array(
        [
            np.angle(
                _zoom_dft(f.astype(np.float64) ** 2, np.array([k[0]]), np.array([k[1]]), pixel_nm)[
                    0, 0
                ]
            )
            for f in frames
        ]
    )


def separation_matrix(phases: np.ndarray) -> np.ndarray:
    """Inverse of the band-mixing matrix rows [1, e^{iφ}, e^{−iφ}] (least squares if > 3)."""
    mix = np.stack([np.ones_like(phases), np.exp(1j * phases), np.exp(-1j * phases)], axis=1)
    return np.linalg.pinv(mix)


def _upsample(image: np.ndarray) -> np.ndarray:
    """Fourier interpolation to a 2× grid (complex in, complex out)."""
    h, w = image.shape
    spec = sfft.fft2(image, workers=-1)
    big = np.zeros((2 * h, 2 * w), np.complex128)
    hy, hx = h // 2, w // 2
    big[:hy, :hx] = spec[:hy, :hx]
    big[:hy, -hx:] = spec[:hy, -hx:]
    big[-hy:, :hx] = spec[-hy:, :hx]
    big[-hy:, -hx:] = spec[-hy:, -hx:]
    return sfft.ifft2(big, workers=-1) * 4


def band_overlap(
    frames: np.ndarray,
    k: tuple[float, float],
    phases: np.ndarray,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
) -> complex:
    """Complex ratio of the moved side band to the widefield band in their overlap.

    Its magnitude is m/2; its argument is the residual phase error of the separation.
    """
    sep = separation_matrix(phases)
    flat = frames.reshape(len(frames), -1)
    c0 = (sep[0] @ flat).reshape(frames.shape[-2:])
    cp = (sep[1] @ flat).reshape(frames.shape[-2:])
    p2 = pixel_nm / 2
    c0_big, cp_big = _upsample(c0), _upsample(cp)
    shape = c0_big.shape
    y = np.arange(shape[0])[:, None] * p2
    x = np.arange(shape[1])[None, :] * p2
    moved = sfft.fft2(cp_big * np.exp(-2j * np.pi * (k[0] * y + k[1] * x)), workers=-1)
    wide = sfft.fft2(c0_big, workers=-1)
    otf0 = widefield_otf(shape, p2, na, wavelength_nm)
    otf_k = widefield_otf(shape, p2, na, wavelength_nm, shift=(-k[0], -k[1]))  # O(f + k)
    region = (otf0 > 0.05) & (otf_k > 0.05)
    a = (otf_k * wide)[region]
    b = (otf0 * moved)[region]
    return complex(np.vdot(a, b) / np.vdot(a, a))


def estimate_sim_parameters(
    raw: np.ndarray,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    n_angles: int = 3,
    n_phases: int = 3,
    offset_adu: float = 100.0,
    k_guess: list[tuple[float, float]] | None = None,
    search_period_nm: tuple[float, float] = (150.0, 300.0),
) -> SIMParameters:
    """Estimate k, phases and modulation of every angle from one raw set."""
    frames = prepare_frames(raw, offset_adu, edge_taper(raw.shape[-2:]))
    if frames.shape[0] != n_angles * n_phases:
        raise ValueError(f"expected {n_angles * n_phases} frames, got {frames.shape[0]}")
    if k_guess is None:
        ks = find_wavevectors(
            frames, n_angles, n_phases, pixel_nm, na, wavelength_nm, search_period_nm
        )
    else:
        ks = [
            _canonical(*_refine_k(frames[a * n_phases : (a + 1) * n_phases], k, pixel_nm))
            for a, k in enumerate(k_guess)
        ]
    return _phases_and_modulation(frames, ks, n_phases, pixel_nm, na, wavelength_nm)


def _phases_and_modulation(
    frames: np.ndarray,
    ks: list[tuple[float, float]],
    n_phases: int,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
) -> SIMParameters:
    phases, modulation = [], []
    for a, k in enumerate(ks):
        group = frames[a * n_phases : (a + 1) * n_phases]
        ph = frame_phases(group, k, pixel_nm)
        ratio = band_overlap(group, k, ph, pixel_nm, na, wavelength_nm)
        phases.append(ph + np.angle(ratio))
        modulation.append(float(np.clip(2 * abs(ratio), 0.05, 1.0)))
    return SIMParameters(tuple(ks), np.array(phases), np.array(modulation))


def refine_sim_parameters(
    raw: np.ndarray,
    params: SIMParameters,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    offset_adu: float = 100.0,
) -> SIMParameters:
    """Re-estimate phases and modulation for a new set, keeping the wavevectors."""
    n_phases = params.phases.shape[1]
    frames = prepare_frames(raw, offset_adu, edge_taper(raw.shape[-2:]))
    return _phases_and_modulation(frames, list(params.k), n_phases, pixel_nm, na, wavelength_nm)
