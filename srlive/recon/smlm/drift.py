"""Drift correction by redundant cross-correlation (RCC; Wang et al., Opt. Express 2014).

The localisations are cut into ``segments`` consecutive blocks of frames, each rendered as a
histogram at ``pixel_nm`` and smoothed. Every pair of blocks (i, j) is cross-correlated; the
peak's sub-pixel position (a parabola through it along each axis) is the shift
``r_ij = d_j − d_i`` between their drifts. The drifts ``d`` follow from all pairs by least
squares (the first block's fixed at 0); pairs whose residual exceeds ``max_residual_nm`` are
dropped and the system solved again, if every block is still connected. The drift of each
frame is interpolated linearly between the blocks' centre frames (held flat beyond them).
Correction subtracts it: positions become those of the first block's time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from srlive.recon.smlm.render import render_shape
from srlive.recon.smlm.table import Localizations

SMOOTH_PX = 1.0


@dataclass(frozen=True)
class Drift:
    """The sample's drift per frame (nm, relative to the first block) and how it was found."""

    x_nm: np.ndarray  # (n_frames,)
    y_nm: np.ndarray
    block_frames: np.ndarray  # centre frame of each block
    block_x_nm: np.ndarray
    block_y_nm: np.ndarray
    pairs_used: int
    pairs_total: int

    def summary(self) -> dict[str, Any]:
        return {
            "blocks": len(self.block_frames),
            "pairs_used": self.pairs_used,
            "pairs_total": self.pairs_total,
            "max_drift_nm": float(np.max(np.hypot(self.x_nm, self.y_nm)))
            if len(self.x_nm)
            else 0.0,
        }


def _peak_offset(corr: np.ndarray, max_shift_px: int) -> tuple[float, float]:
    """Sub-pixel (dy, dx) of the highest peak of a centred correlation within ``max_shift``."""
    cy, cx = corr.shape[0] // 2, corr.shape[1] // 2
    window = corr[
        cy - max_shift_px : cy + max_shift_px + 1, cx - max_shift_px : cx + max_shift_px + 1
    ]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    py, px = iy + cy - max_shift_px, ix + cx - max_shift_px

    def vertex(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return 0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))

    fy = vertex(corr[py - 1, px], corr[py, px], corr[py + 1, px])
    fx = vertex(corr[py, px - 1], corr[py, px], corr[py, px + 1])
    return py - cy + fy, px - cx + fx


def _pair_shifts(images: list[np.ndarray], max_shift_px: int) -> tuple[list, np.ndarray]:
    """All pairs (i, j) and the shift of block j relative to block i (pixels, (dy, dx))."""
    shape = images[0].shape
    spectra = [sfft.rfft2(im - im.mean(), workers=-1) for im in images]
    pairs, shifts = [], []
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            corr = sfft.irfft2(spectra[j] * np.conj(spectra[i]), s=shape, workers=-1)
            corr = np.fft.fftshift(corr)
            pairs.append((i, j))
            shifts.append(_peak_offset(corr, max_shift_px))
    return pairs, np.asarray(shifts, np.float64)


def _solve(pairs: list, shifts: np.ndarray, n: int, keep: np.ndarray) -> np.ndarray | None:
    """Block drifts (n, 2) from the kept pair shifts (block 0 at zero); None if underdetermined."""
    a = np.zeros((int(keep.sum()), n))
    for row, (i, j) in enumerate(p for p, k in zip(pairs, keep, strict=True) if k):
        a[row, i], a[row, j] = -1.0, 1.0
    a = a[:, 1:]
    if np.linalg.matrix_rank(a) < n - 1:
        return None
    d, *_ = np.linalg.lstsq(a, shifts[keep], rcond=None)
    return np.vstack([np.zeros((1, 2)), d])


def estimate_drift(
    locs: Localizations,
    segments: int,
    pixel_nm: float = 20.0,
    max_drift_nm: float = 1000.0,
    max_residual_nm: float = 15.0,
) -> Drift:
    """The drift of ``locs`` from ``segments`` blocks of frames (at least 2)."""
    if segments < 2:
        raise ValueError(f"drift correction needs at least 2 blocks of frames, got {segments}")
    n_frames = max(locs.n_frames, int(locs["frame"].max()) + 1 if len(locs) else 0)
    if n_frames < segments:
        raise ValueError(f"{n_frames} frames cannot be cut into {segments} blocks")
    edges = np.linspace(0, n_frames, segments + 1).round().astype(np.int64)
    shape = render_shape(locs, pixel_nm)
    images = []
    for a, b in itertools.pairwise(edges):
        part = locs.in_frames(int(a), int(b))
        if len(part) == 0:
            raise ValueError(f"frames {a}-{b - 1} hold no localisation: use fewer blocks")
        iy = np.clip((part["y_nm"] / pixel_nm).astype(np.int64), 0, shape[0] - 1)
        ix = np.clip((part["x_nm"] / pixel_nm).astype(np.int64), 0, shape[1] - 1)
        hist = np.bincount(iy * shape[1] + ix, minlength=shape[0] * shape[1]).reshape(shape)
        images.append(ndimage.gaussian_filter(hist.astype(np.float32), SMOOTH_PX))
    max_shift = int(min(max_drift_nm / pixel_nm, min(shape) // 2 - 2))
    pairs, shifts = _pair_shifts(images, max(max_shift, 1))
    keep = np.ones(len(pairs), bool)
    drift = _solve(pairs, shifts, segments, keep)
    if drift is None:  # every block is paired with every other: never underdetermined
        raise ValueError("drift: the block shifts do not determine the drift")
    residual = np.array(
        [np.hypot(*(drift[j] - drift[i] - s)) for (i, j), s in zip(pairs, shifts, strict=True)]
    )
    outliers = residual * pixel_nm > max_residual_nm
    if outliers.any():
        better = _solve(pairs, shifts, segments, ~outliers)
        if better is not None:
            drift, keep = better, ~outliers
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    frames = np.arange(n_frames)
    dy = np.interp(frames, centres, drift[:, 0] * pixel_nm)
    dx = np.interp(frames, centres, drift[:, 1] * pixel_nm)
    return Drift(
        dx, dy, centres, drift[:, 1] * pixel_nm, drift[:, 0] * pixel_nm, int(keep.sum()), len(pairs)
    )


def correct_drift(locs: Localizations, drift: Drift) -> Localizations:
    """``locs`` with each frame's drift subtracted."""
    frame = np.clip(locs["frame"], 0, len(drift.x_nm) - 1)
    return locs.replace(
        x_nm=locs["x_nm"] - drift.x_nm[frame], y_nm=locs["y_nm"] - drift.y_nm[frame]
    )
