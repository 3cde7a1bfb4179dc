"""SLM pattern drawing: the binary gratings srlive shows on the SLM (pure numpy).

srlive owns these images; the simulated microscope (:mod:`simulators.illumination`) imports
:func:`draw_grating` from here to know what a real SLM would show, so this module imports
nothing from srlive or the simulator.

Coordinates: pixel (i, j) of an (H, W) array has its centre at ``y = i − (H−1)/2``,
``x = j − (W−1)/2`` (SLM pixels); angles are measured from +x towards +y.
"""

from __future__ import annotations

import numpy as np


def draw_grating(
    shape_slm: tuple[int, int],
    period_px: float,
    angle_rad: float,
    phase_rad: float,
    dtype: type = np.uint8,
) -> np.ndarray:
    """A binary grating (0/255) whose fringe at the sample has this angle and phase.

    ``period_px`` is the grating period in SLM pixels; the ±1 orders interfere into a fringe
    of period ``period_px/2`` SLM pixels. Shifting the grating by ``period·φ/(4π)`` shifts the
    fringe phase by φ.
    """
    y = (np.arange(shape_slm[0]) - (shape_slm[0] - 1) / 2)[:, None]
    x = (np.arange(shape_slm[1]) - (shape_slm[1] - 1) / 2)[None, :]
    along = x * np.cos(angle_rad) + y * np.sin(angle_rad)
    # on where cos(2π·along/period + φ/2) > 0, as a half-open interval so that integer
    # periods keep an exact 50 % duty cycle (no pixel sits on a tie)
    cycles = np.round(along / period_px + phase_rad / (4 * np.pi) + 0.25, 9) % 1.0
    return np.where(cycles < 0.5, 255, 0).astype(dtype)
