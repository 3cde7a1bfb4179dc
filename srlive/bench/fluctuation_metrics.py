"""Scoring helpers of the fluctuation benchmarks: fine-grid interpolation, line-pair dips, FRC.

Every image here lives on a grid registered with the camera the way eSRRF's is: fine pixel
``i`` of an axis (``m`` per camera pixel) is centred at camera coordinate ``(i + 0.5)/m - 0.5``,
so at ``(i + 0.5)·pixel_nm/m - field_nm/2`` nm from the field centre (the simulator's origin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as sfft

from srlive.recon.fft_threads import FFT_WORKERS
from srlive.recon.resolution import frc_resolution_nm


def fourier_magnify(frames: np.ndarray, m: int) -> np.ndarray:
    """Band-limited (zero-padded spectrum) interpolation of (..., H, W) to (..., H·m, W·m).

    Registered like eSRRF's grid (a phase ramp moves the samples by ``0.5/m - 0.5`` camera
    pixels); the Nyquist row and column of even sizes are dropped. Exact for frames sampled
    above the optics' Nyquist rate (65 nm pixels at NA 1.49, 510 nm: 1/130 > 1/171 nm⁻¹).
    """
    if int(m) != m or m < 1:
        raise ValueError(f"magnification must be a positive integer, got {m}")
    data = np.asarray(frames, np.float32)
    if m == 1:
        return data.copy()
    h, w = data.shape[-2:]
    shift = 0.5 / m - 0.5  # camera pixels
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    phase = np.exp(2j * np.pi * shift * (ky + kx)).astype(np.complex64)
    spectrum = sfft.rfft2(data, workers=FFT_WORKERS) * phase
    if h % 2 == 0:
        spectrum[..., h // 2, :] = 0
    if w % 2 == 0:
        spectrum[..., w // 2] = 0
    big = np.zeros((*data.shape[:-2], m * h, m * w // 2 + 1), np.complex64)
    top = (h + 1) // 2
    big[..., :top, : w // 2 + 1] = spectrum[..., :top, :]
    big[..., m * h - (h - top) :, : w // 2 + 1] = spectrum[..., top:, :]
    out = sfft.irfft2(big, s=(m * h, m * w), workers=FFT_WORKERS)
    return (out * m * m).astype(np.float32)


def fine_coords_nm(n_fine: int, m: int, pixel_nm: float) -> np.ndarray:
    """Positions (nm from the field centre) of the fine pixels of one axis."""
    return (np.arange(n_fine) + 0.5) * pixel_nm / m - n_fine * pixel_nm / (2 * m)


def line_profile(
    image: np.ndarray, m: int, pixel_nm: float, along_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Profile across lines that run along x: the mean over columns within ±along_nm/2.

    Returns (y positions nm from the field centre, profile), float64.
    """
    image = np.asarray(image, np.float64)
    y = fine_coords_nm(image.shape[0], m, pixel_nm)
    x = fine_coords_nm(image.shape[1], m, pixel_nm)
    cols = np.abs(x) <= along_nm / 2
    if not cols.any():
        raise ValueError(f"along_nm {along_nm} selects no column of the image")
    return y, image[:, cols].mean(axis=1)


def dip_analysis(
    y_nm: np.ndarray,
    profile: np.ndarray,
    separation_nm: float,
    criterion: float = 0.8,
    search_nm: float = 200.0,
    baseline_gap_nm: float = 400.0,
    edge_nm: float = 200.0,
) -> dict[str, Any]:
    """Two-line criterion on a profile across two lines ``separation_nm`` apart at ±sep/2.

    The baseline (mean of the profile farther than ``baseline_gap_nm`` from both lines and
    ``edge_nm`` from the image edges) is subtracted. Each side of the midpoint (y = 0) gives
    its peak: the maximum within ``sep/2 + search_nm`` of the midpoint. ``dip`` is the lowest
    value between the two peaks over the lower peak (1: one peak, no dip). Resolved when
    ``dip < criterion`` (0.8: Rayleigh-like; Rayleigh's two Airy discs dip to 0.735).
    """
    y = np.asarray(y_nm, np.float64)
    p = np.asarray(profile, np.float64)
    half = separation_nm / 2
    far = (np.abs(y) > half + baseline_gap_nm) & (np.abs(y) < np.abs(y).max() - edge_nm)
    baseline = float(p[far].mean()) if far.any() else float(p.min())
    p = p - baseline
    reach = np.abs(y) <= half + search_nm
    left = np.flatnonzero(reach & (y < 0))
    right = np.flatnonzero(reach & (y >= 0))
    if left.size == 0 or right.size == 0:
        raise ValueError("profile too coarse for the line pair (no samples on one side)")
    a = int(left[np.argmax(p[left])])
    b = int(right[np.argmax(p[right])])
    low = min(p[a], p[b])
    dip = float(p[a : b + 1].min() / low) if low > 0 else 1.0
    return {
        "dip": round(dip, 4),
        "resolved": bool(dip < criterion),
        "peak_separation_nm": round(float(y[b] - y[a]), 1),
    }


def smallest_resolved(separations: list[float], resolved: list[bool]) -> float | None:
    """Smallest separation from which every larger one of the series is resolved (None: not
    even the largest)."""
    order = np.argsort(separations)
    best = None
    for i in order[::-1]:
        if not resolved[i]:
            break
        best = float(separations[i])
    return best


def frc_nm(even: np.ndarray, odd: np.ndarray, pixel_nm: float) -> float:
    """FRC resolution (1/7 threshold) of two independent half-data images."""
    return round(frc_resolution_nm(even, odd, pixel_nm), 1)
