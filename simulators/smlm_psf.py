"""Single-emitter PSFs on the camera grid: a scalar pupil with defocus and astigmatism.

The coherent pupil is a disc of radius NA_eff/λ with the defocus phase ``2π·z·k_z(ρ)``
(``k_z = sqrt((n_s/λ)² − ρ²)``) and, for astigmatic 3D, a Zernike astigmatism
``Z₂² = √6·(ρ/ρ_max)²·cos 2φ`` of ``astigmatism_nm`` rms wavefront error. The emitters sit in
an aqueous sample of index ``n_sample``: light beyond its critical angle reaches an oil
objective only as the near field of dyes within ~100 nm of the coverslip, so the collected
pupil ends at NA_eff = min(NA, n_sample) and defocus is that of the sample medium (a
scalar model; the depth-dependent spherical aberration of the index step is left out).

The intensity PSF ``|FT(pupil)|²`` is band-limited to 2NA_eff/λ, below the Nyquist
frequency of 65 nm pixels at visible wavelengths, so its samples on the camera grid hold it
exactly: an emitter is rendered on a ``patch × patch`` pixel tile from the PSF's Fourier
transform times the pixel's box (integration over the pixel area) times the phase ramp of
its sub-pixel position. No interpolation grid, so no position bias: the pixel values are
those of the continuous PSF integrated over each pixel, up to the PSF energy beyond the tile
(folded back onto it: the tile is one period of the periodised PSF).

Emitters at different depths use the OTF at their z, interpolated linearly between planes
``z_step_nm`` apart (the PSF is smooth in z; 10 nm steps change it by < 1 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import fft as sfft

OVERSIZE = 8  # the pupil grid is this many tiles wide (fine pupil sampling)


@dataclass(frozen=True)
class PupilOptics:
    """Objective, emission and camera pixel of an SMLM microscope (defaults: DESIGN.md, 640 nm)."""

    pixel_nm: float = 65.0
    na: float = 1.49
    emission_nm: float = 670.0
    n_immersion: float = 1.518
    n_sample: float = 1.33
    astigmatism_nm: float = 0.0  # rms Zernike Z(2,2) wavefront error; 0: 2D
    patch: int = 24  # camera pixels per rendered tile (even)
    z_range_nm: float = 0.0  # OTFs tabulated for |z| <= this (0: every emitter in focus)
    z_step_nm: float = 10.0

    def __post_init__(self) -> None:
        if min(self.pixel_nm, self.na, self.emission_nm, self.z_step_nm) <= 0:
            raise ValueError("pixel_nm, na, emission_nm and z_step_nm must be positive")
        if self.na >= self.n_immersion:
            raise ValueError(f"na {self.na} must be below n_immersion {self.n_immersion}")
        if not 1.0 <= self.n_sample <= self.n_immersion:
            raise ValueError(f"n_sample {self.n_sample} must be in [1, n_immersion]")
        if self.patch < 8 or self.patch % 2:
            raise ValueError(f"patch must be an even number >= 8, got {self.patch}")
        if self.z_range_nm < 0 or self.astigmatism_nm < 0:
            raise ValueError("z_range_nm and astigmatism_nm must be >= 0")

    @property
    def effective_na(self) -> float:
        """The NA of the light collected from the sample: min(NA, n_sample)."""
        return min(self.na, self.n_sample)

    @property
    def sigma_nm(self) -> float:
        """Standard deviation of the Gaussian closest to the in-focus PSF (≈ 0.21 λ/NA_eff)."""
        return 0.21 * self.emission_nm / self.effective_na

    @property
    def z_planes_nm(self) -> np.ndarray:
        n = round(self.z_range_nm / self.z_step_nm)
        return np.arange(-n, n + 1) * self.z_step_nm


def pupil_psf(optics: PupilOptics, z_nm: np.ndarray | float, grid: int) -> np.ndarray:
    """Intensity PSFs ``(len(z), grid, grid)`` at camera sampling, centred at [g/2, g/2], sum 1."""
    z = np.atleast_1d(np.asarray(z_nm, np.float64))
    f = np.fft.fftfreq(grid, d=optics.pixel_nm)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rho = np.hypot(fy, fx)
    kmax = optics.effective_na / optics.emission_nm
    inside = rho <= kmax
    kz = np.sqrt(np.clip((optics.n_sample / optics.emission_nm) ** 2 - rho**2, 0, None))
    phase0 = np.zeros_like(rho)
    if optics.astigmatism_nm:
        r2 = (rho / kmax) ** 2
        cos2 = np.cos(2 * np.arctan2(fy, fx))
        phase0 = 2 * np.pi * optics.astigmatism_nm / optics.emission_nm * np.sqrt(6) * r2 * cos2
    out = np.empty((z.size, grid, grid), np.float64)
    for i, zi in enumerate(z):
        pupil = np.where(inside, np.exp(1j * (phase0 + 2 * np.pi * zi * kz)), 0)
        psf = np.abs(sfft.ifft2(pupil, workers=-1)) ** 2
        out[i] = np.fft.fftshift(psf / psf.sum())
    return out


def _fold(psf: np.ndarray, patch: int) -> np.ndarray:
    """The periodisation of centred PSFs ``(n, G, G)`` onto ``patch`` (origin at index 0)."""
    g = psf.shape[-1]
    shifted = np.fft.ifftshift(psf, axes=(-2, -1))
    k = g // patch
    return shifted.reshape(len(psf), k, patch, k, patch).sum(axis=(1, 3))


class PSFRenderer:
    """Renders point emitters (photons, sub-pixel positions, depth) into camera frames."""

    def __init__(self, optics: PupilOptics | None = None) -> None:
        self.optics = optics or PupilOptics()

    @cached_property
    def _otfs(self) -> np.ndarray:
        """Pixel-integrated OTFs ``(n_z, patch, patch//2+1)`` on the tile's rfft grid."""
        o = self.optics
        z = o.z_planes_nm
        psf = _fold(pupil_psf(o, z, o.patch * OVERSIZE), o.patch)
        otf = sfft.rfft2(psf, workers=-1)
        fy = np.fft.fftfreq(o.patch)[:, None]
        fx = np.fft.rfftfreq(o.patch)[None, :]
        otf *= np.sinc(fy) * np.sinc(fx)  # integration over the pixel's area
        return otf.astype(np.complex128)

    def _otf_at(self, z_nm: np.ndarray) -> np.ndarray:
        o = self.optics
        otfs = self._otfs
        if len(otfs) == 1:
            return np.broadcast_to(otfs[0], (len(z_nm), *otfs.shape[1:]))
        pos = (np.clip(z_nm, -o.z_range_nm, o.z_range_nm) + o.z_range_nm) / o.z_step_nm
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, len(otfs) - 2)
        w = (pos - i0)[:, None, None]
        return otfs[i0] * (1 - w) + otfs[i0 + 1] * w

    def tiles(
        self, y_px: np.ndarray, x_px: np.ndarray, z_nm: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit-sum tiles ``(n, patch, patch)`` and their top-left pixels (row, column).

        Positions are in pixels with pixel ``k`` covering ``[k, k+1)`` (its centre at k + ½).
        """
        p = self.optics.patch
        y = np.asarray(y_px, np.float64) - 0.5  # pixel-centre coordinates
        x = np.asarray(x_px, np.float64) - 0.5
        cy, cx = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
        dy, dx = y - cy, x - cx
        z = np.zeros(len(y)) if z_nm is None else np.asarray(z_nm, np.float64)
        fy = np.fft.fftfreq(p)[None, :, None]
        fx = np.fft.rfftfreq(p)[None, None, :]
        ramp_y = np.exp(-2j * np.pi * fy * dy[:, None, None])  # separable: cheap
        ramp_x = np.exp(-2j * np.pi * fx * dx[:, None, None])
        tiles = sfft.irfft2(self._otf_at(z) * ramp_y * ramp_x, s=(p, p), workers=-1)
        tiles = np.fft.fftshift(tiles, axes=(-2, -1))  # the emitter's pixel at [p/2, p/2]
        np.clip(tiles, 0.0, None, out=tiles)
        return tiles.astype(np.float32), cy - p // 2, cx - p // 2

    def render(
        self,
        shape: tuple[int, int],
        frame: np.ndarray,
        n_frames: int,
        y_px: np.ndarray,
        x_px: np.ndarray,
        photons: np.ndarray,
        z_nm: np.ndarray | None = None,
        chunk: int = 4096,
    ) -> np.ndarray:
        """Expected photons per pixel ``(n_frames, H, W)`` of emitters in the given frames."""
        h, w = shape
        p = self.optics.patch
        y_px, x_px = np.asarray(y_px, np.float64), np.asarray(x_px, np.float64)
        margin = p / 2 - 1  # tiles of emitters this far outside the frame still reach into it
        near = (np.minimum(y_px, x_px) > -margin) & (y_px < h + margin) & (x_px < w + margin)
        frame, y_px, x_px = np.asarray(frame)[near], y_px[near], x_px[near]
        photons = np.asarray(photons)[near]
        z_nm = None if z_nm is None else np.asarray(z_nm)[near]
        out = np.zeros((n_frames, h + 2 * p, w + 2 * p), np.float32)  # margins for edge tiles
        flat = out.reshape(-1)
        rows = np.arange(p)[:, None] * (w + 2 * p) + np.arange(p)[None, :]
        for s in range(0, len(frame), chunk):
            part = slice(s, s + chunk)
            z = None if z_nm is None else z_nm[part]
            tiles, top, left = self.tiles(y_px[part], x_px[part], z)
            base = (frame[part] * (h + 2 * p) + top + p) * (w + 2 * p) + left + p
            index = base[:, None, None] + rows[None]
            weights = tiles * np.asarray(photons[part], np.float32)[:, None, None]
            flat += np.bincount(index.ravel(), weights.ravel(), flat.size).astype(np.float32)
        return out[:, p : p + h, p : p + w].copy()
