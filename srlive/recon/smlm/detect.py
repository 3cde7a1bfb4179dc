"""Finding candidate emitters: difference-of-Gaussians, local maxima, a noise-based threshold.

Each frame (photoelectrons) is filtered by a difference of Gaussians: a blur at the PSF's
width (the matched filter) minus a wider one (``WIDE_FACTOR`` × σ) that follows the local
background. A candidate is a local maximum of the filtered frame above ``threshold`` times
the noise the camera model predicts there: the filtered image's standard deviation for
pixels of variance ``mean + read variance`` (Poisson photoelectrons plus read noise), with
the local mean taken from the wide blur, is ``sqrt(Σk² · (mean + v))`` for the DoG kernel
``k``. No statistic of the frame itself enters, so dense frames are thresholded as sparse
ones are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

WIDE_FACTOR = 2.5


@dataclass(frozen=True)
class Candidates:
    """Candidate spots: frame (index into the stack), pixel row and column, significance."""

    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray
    significance: np.ndarray  # filtered value / the frame's filtered noise

    def __len__(self) -> int:
        return len(self.frame)


def dog_kernel_energy(sigma_px: float) -> float:
    """Σk² of the DoG kernel (normalised Gaussians of σ and WIDE_FACTOR·σ), in pixels."""
    s1, s2 = sigma_px, WIDE_FACTOR * sigma_px
    return 1 / (4 * np.pi * s1**2) + 1 / (4 * np.pi * s2**2) - 1 / (np.pi * (s1**2 + s2**2))


def find_candidates(
    frames: np.ndarray,
    sigma_px: float,
    threshold: float,
    read_variance: float = 0.0,
    min_distance_px: int = 1,
) -> Candidates:
    """Local maxima (within ``min_distance_px``) above ``threshold`` predicted noise SDs.

    ``frames`` are photoelectrons; ``read_variance`` the read noise's variance (e⁻²).
    """
    frames = np.asarray(frames, np.float32)
    narrow = ndimage.gaussian_filter(frames, (0, sigma_px, sigma_px), mode="nearest")
    wide_px = WIDE_FACTOR * sigma_px
    wide = ndimage.gaussian_filter(frames, (0, wide_px, wide_px), mode="nearest")
    filtered = narrow - wide
    energy = np.float32(dog_kernel_energy(sigma_px))
    noise = np.sqrt(energy * (np.clip(wide, 0, None) + np.float32(read_variance) + 1e-3))
    size = 2 * int(min_distance_px) + 1
    peaks = filtered == ndimage.maximum_filter(filtered, size=(1, size, size), mode="nearest")
    peaks &= filtered > threshold * noise
    t, r, c = np.nonzero(peaks)
    return Candidates(t, r, c, filtered[t, r, c] / noise[t, r, c])
