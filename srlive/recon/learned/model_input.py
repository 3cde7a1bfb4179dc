"""The planes a pattern-conditioned model reads, for either kind of SIM input."""

from __future__ import annotations

import numpy as np

from srlive.recon.learned.pattern_input import BandGeometry, angles_found, band_features
from srlive.recon.learned.single_phase_input import single_phase_features


def model_planes(inputs: str, frames: np.ndarray, geometry: BandGeometry) -> tuple[np.ndarray, int]:
    """A pattern-conditioned model's planes of offset-free frames (``inputs``: ``sim-bands``
    for 9 frames, ``single-phase`` for 3), in ADU, and the angles whose fringe was found."""
    if inputs == "sim-bands":
        planes, params = band_features(frames, geometry)
        return planes, angles_found(params)
    if inputs == "single-phase":
        planes, pattern = single_phase_features(frames, geometry)
        return planes, int(pattern.found.sum())
    raise ValueError(f"no pattern planes for inputs {inputs!r}")
