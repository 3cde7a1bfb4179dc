"""Fluorophore photophysics: emission, photobleaching by dose, blinking at high power."""

from __future__ import annotations

import numpy as np


def expected_photons(
    density: np.ndarray,
    illumination: np.ndarray | float,
    power_mw: float,
    exposure_ms: float,
    brightness: float,
    oversample: int = 1,
) -> np.ndarray:
    """Photons emitted per simulation pixel.

    ``brightness`` is photons per (mW·ms) for unit density over one *camera* pixel; with an
    oversampled grid each of the ``oversample²`` sub-pixels gets its share, so the signal per
    camera pixel does not depend on the oversampling.
    """
    scale = power_mw * exposure_ms * brightness / oversample**2
    return (density * illumination * np.float32(scale)).astype(np.float32, copy=False)


def bleach_survival(dose_mj: float | np.ndarray, half_dose_mj: float) -> float | np.ndarray:
    """Fraction of fluorophores not yet bleached after an accumulated light dose."""
    return np.power(0.5, np.asarray(dose_mj, dtype=np.float64) / half_dose_mj)


def blinking_on_fraction(power_mw: float, threshold_mw: float, on_at_threshold: float) -> float:
    """Fraction of emitters in the on-state per frame (1 below the SMLM threshold)."""
    if power_mw < threshold_mw:
        return 1.0
    return on_at_threshold * threshold_mw / power_mw


def blinking_state(
    n_emitters: int,
    power_mw: float,
    exposure_ms: float,
    rng: np.random.Generator,
    threshold_mw: float = 100.0,
    on_at_threshold: float = 0.002,
) -> np.ndarray:
    """Which emitters are on in one frame.

    Below the threshold every emitter emits continuously. Above it, most are driven into a
    long-lived dark state and a sparse random subset returns per frame (fewer at higher
    power); longer exposures catch proportionally more returns (reference 10 ms).
    """
    fraction = blinking_on_fraction(power_mw, threshold_mw, on_at_threshold)
    if fraction >= 1.0:
        return np.ones(n_emitters, bool)
    p = min(1.0, fraction * max(exposure_ms, 0.1) / 10.0)
    return rng.random(n_emitters) < p


def sample_emitters(
    density: np.ndarray, pixel_nm: float, n_per_unit: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw emitter positions (N, 2) in nm (y, x; origin at the grid centre) from a density."""
    counts = rng.poisson(np.clip(density, 0, None) * n_per_unit)
    iy, ix = np.nonzero(counts)
    reps = counts[iy, ix]
    iy, ix = np.repeat(iy, reps), np.repeat(ix, reps)
    jitter = rng.random((iy.size, 2)) - 0.5
    y = (iy + jitter[:, 0] - (density.shape[0] - 1) / 2) * pixel_nm
    x = (ix + jitter[:, 1] - (density.shape[1] - 1) / 2) * pixel_nm
    return np.stack([y, x], axis=1).astype(np.float32)


def render_points(
    positions_nm: np.ndarray, weights: np.ndarray, shape: tuple[int, int], pixel_nm: float
) -> np.ndarray:
    """Splat weighted points onto a grid (bilinear), origin at the grid centre."""
    out = np.zeros(shape[0] * shape[1], np.float64)
    if len(positions_nm) == 0:
        return out.reshape(shape).astype(np.float32)
    fy = positions_nm[:, 0] / pixel_nm + (shape[0] - 1) / 2
    fx = positions_nm[:, 1] / pixel_nm + (shape[1] - 1) / 2
    y0, x0 = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    dy, dx = fy - y0, fx - x0
    w = np.asarray(weights, np.float64)
    for oy, ox, share in (
        (0, 0, (1 - dy) * (1 - dx)),
        (0, 1, (1 - dy) * dx),
        (1, 0, dy * (1 - dx)),
        (1, 1, dy * dx),
    ):
        yy, xx = y0 + oy, x0 + ox
        ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        out += np.bincount(yy[ok] * shape[1] + xx[ok], weights=(w * share)[ok], minlength=out.size)
    return out.reshape(shape).astype(np.float32)
