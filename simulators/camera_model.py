"""sCMOS camera physics: quantum efficiency, shot and read noise, offset, gain, saturation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

GAUSSIAN_SHOT_ABOVE_E = 400.0  # above this mean, Poisson ≈ Gaussian (relative error < 0.1 %)
INVERSION_BELOW_E = 3.0  # below this mean, Poisson by CDF inversion (2-3x numpy's sampler)
DENSE_INVERSION_STEPS = 4  # CDF terms evaluated for every pixel before the rare tail
MAX_INVERSION_COUNT = 64  # a bound the search never reaches below 3 e- (P < 1e-60)
PARALLEL_ABOVE_PIXELS = 128 * 1024  # split noise generation across two threads above this
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="srlive-camera-noise")


def poisson_by_inversion(lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson draws for small means by inverting the CDF with one uniform per pixel.

    The first ``DENSE_INVERSION_STEPS`` terms of the CDF are evaluated for every pixel in
    float32 (vectorised, no branching: exact up to float32 rounding, ~1e-7 in probability,
    the resolution of the float32 uniforms themselves); the few pixels whose uniform lies
    beyond them continue the search alone on a CDF recomputed in float64, which reaches every
    float32 uniform (< 1), so the search always ends. A dim frame (most pixels well below one
    electron, the low-light regime this project lives in) costs a third to a half of numpy's
    per-pixel sampler.
    """
    lam = np.ascontiguousarray(lam, np.float32)
    u = rng.random(lam.shape, np.float32)
    term = np.exp(-lam)
    cdf = term.copy()
    count = (u > cdf).astype(np.float32)
    for k in range(1, DENSE_INVERSION_STEPS + 1):
        term *= lam
        term *= np.float32(1.0 / k)
        cdf += term
        count += u > cdf
    tail = np.flatnonzero(u > cdf)
    if tail.size:
        flat = count.reshape(-1)
        t_lam = lam.reshape(-1)[tail].astype(np.float64)
        t_u = u.reshape(-1)[tail]
        t_term = np.exp(-t_lam)
        t_cdf = t_term.copy()
        for k in range(1, DENSE_INVERSION_STEPS + 1):
            t_term *= t_lam / k
            t_cdf += t_term
        k = DENSE_INVERSION_STEPS
        while tail.size and k < MAX_INVERSION_COUNT:
            k += 1
            t_term *= t_lam / k
            t_cdf += t_term
            beyond = t_u > t_cdf
            flat[tail[beyond]] += 1
            tail, t_lam, t_term = tail[beyond], t_lam[beyond], t_term[beyond]
            t_cdf, t_u = t_cdf[beyond], t_u[beyond]
    return count


def _shot_noise(mean_e: np.ndarray, out: np.ndarray, rng: np.random.Generator) -> None:
    """Poisson electrons into ``out``: by inversion where dim, Gaussian where bright."""
    dim = mean_e < INVERSION_BELOW_E
    if dim.all():
        out[...] = poisson_by_inversion(mean_e, rng)
        return
    bright = mean_e > GAUSSIAN_SHOT_ABOVE_E
    middle = ~(dim | bright)
    out[dim] = poisson_by_inversion(mean_e[dim], rng)
    out[middle] = rng.poisson(mean_e[middle])
    if bright.any():
        lam = mean_e[bright]
        out[bright] = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, np.float32)


@dataclass(frozen=True)
class CameraModel:
    """A scientific CMOS camera (defaults: a typical back-illuminated sCMOS)."""

    qe: float = 0.8
    read_noise_e: float = 1.6
    offset_adu: float = 100.0
    e_per_adu: float = 0.46
    dark_e_per_s: float = 0.06
    full_well_e: float = 30000.0
    bit_depth: int = 16
    row_readout_us: float = 10.0

    @property
    def max_adu(self) -> int:
        return 2**self.bit_depth - 1

    def readout_ms(self, n_rows: int) -> float:
        """Rolling-shutter readout time of ``n_rows`` rows."""
        return n_rows * self.row_readout_us / 1000.0

    def min_frame_interval_ms(self, exposure_ms: float, n_rows: int) -> float:
        """A sequence cannot run faster than exposure + readout."""
        return exposure_ms + self.readout_ms(n_rows)

    def mean_electrons(self, photons: np.ndarray, exposure_ms: float) -> np.ndarray:
        """Expected photo-electrons + dark electrons per pixel."""
        return self.qe * photons + self.dark_e_per_s * exposure_ms / 1000.0

    def adu_to_photons(self, adu: np.ndarray, exposure_ms: float) -> np.ndarray:
        """Invert the mean response: photons per pixel from ADU (float32, noise kept)."""
        electrons = (np.asarray(adu, np.float32) - np.float32(self.offset_adu)) * np.float32(
            self.e_per_adu
        )
        dark = np.float32(self.dark_e_per_s * exposure_ms / 1000.0)
        return (electrons - dark) / np.float32(self.qe)

    def expose(
        self,
        photons: np.ndarray,
        exposure_ms: float,
        rng: np.random.Generator,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Turn expected photons per pixel into a noisy 16-bit frame in ADU.

        Shot noise is Poisson; for pixels with a mean above ``GAUSSIAN_SHOT_ABOVE_E``
        electrons it is drawn as a Gaussian of the same mean and variance (faster, and
        indistinguishable there). Electrons clip at the full well; read noise is Gaussian.
        Large frames are processed as two halves on two threads with independent random
        streams (numpy releases the GIL while drawing).
        """
        photons = np.asarray(photons, np.float32)
        if out is None:
            out = np.empty(photons.shape, np.uint16)
        if photons.size >= PARALLEL_ABOVE_PIXELS and photons.ndim == 2:
            half = photons.shape[0] // 2
            parts = (slice(0, half), slice(half, None))
            streams = rng.spawn(2)
            list(
                _POOL.map(
                    lambda i: self._expose_part(
                        photons[parts[i]], exposure_ms, streams[i], out[parts[i]]
                    ),
                    range(2),
                )
            )
        else:
            self._expose_part(photons, exposure_ms, rng, out)
        return out

    def _expose_part(
        self, photons: np.ndarray, exposure_ms: float, rng: np.random.Generator, out: np.ndarray
    ) -> None:
        mean_e = np.clip(self.mean_electrons(photons, exposure_ms), 0.0, None, dtype=np.float32)
        electrons = np.empty_like(mean_e)
        _shot_noise(mean_e, electrons, rng)
        np.clip(electrons, 0.0, self.full_well_e, out=electrons)
        noise = rng.standard_normal(electrons.shape, np.float32)
        noise *= np.float32(self.read_noise_e)
        electrons += noise
        electrons *= np.float32(1.0 / self.e_per_adu)
        electrons += np.float32(self.offset_adu)
        np.rint(electrons, out=electrons)
        np.clip(electrons, 0, self.max_adu, out=electrons)
        out[...] = electrons


def bin_to_camera(hi: np.ndarray, factor: int) -> np.ndarray:
    """Sum ``factor``×``factor`` blocks: pixel integration from the simulation grid."""
    if factor == 1:
        return hi
    h, w = hi.shape[-2] // factor, hi.shape[-1] // factor
    trimmed = hi[..., : h * factor, : w * factor]
    # strided slices added in turn: ~5x faster than a reshaped sum over two inner axes
    cols = trimmed[..., 0::factor]
    for j in range(1, factor):
        cols = cols + trimmed[..., j::factor]
    out = cols[..., 0::factor, :]
    for i in range(1, factor):
        out = out + cols[..., i::factor, :]
    return out
