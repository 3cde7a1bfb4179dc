"""Finding candidate emitters: difference-of-Gaussians, local maxima, a noise-based threshold.

Each frame (photoelectrons) is filtered by a band-pass: a Gaussian blur at the PSF's width
(the matched filter) minus a box mean ``2·round(WIDE_FACTOR·σ) + 1`` pixels wide that
follows the local background (a difference-of-Gaussians-like filter; the box is several
times cheaper than a wide Gaussian). A candidate is a local maximum of the filtered frame
above ``threshold`` times the noise the camera model predicts there: for pixels of variance
``mean + read variance`` (Poisson photoelectrons plus read noise), with the local mean from
the box, the filtered value's standard deviation is ``sqrt(Σk² · (mean + v))`` for the
filter's kernel ``k``. No statistic of the frame itself enters, so dense frames are
thresholded as sparse ones are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

WIDE_FACTOR = 2.5  # the background filter's half-width, in PSF σ
TRUNCATE = 3.0  # the matched Gaussian's kernel reaches this many σ
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


@dataclass(frozen=True)
class Candidates:
    """Candidate spots: frame (index into the stack), pixel row and column, significance."""

    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    significance: np.ndarray  # filtered value / the predicted noise there

    def __len__(self) -> int:
        return len(self.frame)


def _filters(frames: np.ndarray, sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The matched (Gaussian) and background (box) filtered frames."""
    narrow = ndimage.gaussian_filter(
        frames, (0, sigma_px, sigma_px), mode="nearest", truncate=TRUNCATE
    )
    width = 2 * round(WIDE_FACTOR * sigma_px) + 1
    wide = ndimage.uniform_filter(frames, (1, width, width), mode="nearest")
    return narrow, wide


@lru_cache(maxsize=16)
def dog_kernel_energy(sigma_px: float) -> float:
    """Σk² of the filter k = matched − background, measured on a unit impulse."""
    half = int(4 * WIDE_FACTOR * sigma_px) + 4
    impulse = np.zeros((1, 2 * half + 1, 2 * half + 1), np.float64)
    impulse[0, half, half] = 1.0
    narrow, wide = _filters(impulse, sigma_px)
    return float(((narrow - wide) ** 2).sum())


def _local_maxima(filtered: np.ndarray, t: np.ndarray, r: np.ndarray, c: np.ndarray):
    """Which pixels (t, r, c) are >= their 8 neighbours (edges repeat, as 'nearest')."""
    _, h, w = filtered.shape
    value = filtered[t, r, c]
    peak = np.ones(len(t), bool)
    for dy, dx in _NEIGHBOURS:
        rr = np.clip(r + dy, 0, h - 1)
        cc = np.clip(c + dx, 0, w - 1)
        peak &= value >= filtered[t, rr, cc]
    return peak


def find_candidates(
    frames: np.ndarray,
    sigma_px: float,
    threshold: float,
    read_variance: float = 0.0,
    min_distance_px: int = 1,
) -> Candidates:
    """Local maxima above ``threshold`` predicted noise SDs.

    ``frames`` are photoelectrons; ``read_variance`` the read noise's variance (e⁻²).
    ``min_distance_px`` > 1 asks for maxima over a wider neighbourhood.
    """
    frames = np.asarray(frames, np.float32)
    narrow, wide = _filters(frames, sigma_px)
    filtered = np.subtract(narrow, wide, out=narrow)
    energy = dog_kernel_energy(float(sigma_px))
    floor = np.float32(read_variance + 1e-3)
    # no pixel's noise is below the read noise's: test that bound on the whole frame first,
    # then the full noise model where it passes
    t, r, c = np.nonzero(filtered > np.float32(threshold * np.sqrt(energy * floor)))
    noise = np.sqrt(energy * (np.clip(wide[t, r, c], 0, None) + floor))
    value = filtered[t, r, c]
    keep = value > threshold * noise
    t, r, c, value, noise = t[keep], r[keep], c[keep], value[keep], noise[keep]
    if min_distance_px > 1:
        size = 2 * int(min_distance_px) + 1
        wider = ndimage.maximum_filter(filtered, size=(1, size, size), mode="nearest")
        peak = value == wider[t, r, c]
    else:
        peak = _local_maxima(filtered, t, r, c)
    t, r, c = t[peak], r[peak], c[peak]
    return Candidates(t, r, c, value[peak] / noise[peak])
