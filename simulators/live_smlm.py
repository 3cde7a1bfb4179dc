"""SMLM dyes of the live simulated world: photoswitching under excitation and activation.

When an excitation laser runs at or above the world's SMLM threshold, the sample's dyes are
:data:`simulators.smlm.SMLM_DYE` two-state dyes with bleaching (a dSTORM dye in a switching
buffer): the excitation drives them into a long-lived dark state, they return thermally and
faster under the activation line (405 nm, the sum of its lasers' power), and they bleach
from the on state, so a long acquisition runs out of dyes unless the activation rises.
Each exposure integrates every dye's exact on-time (:func:`simulators.blinking.integrate_exposure`);
the gap to the next frame (readout) moves them on in the dark when the lasers are gated.

The dyes keep their states from frame to frame and between runs of the same sample; a new
sample (or a new field of view) draws new dyes.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from simulators.blinking import BLEACHED, ON, SwitchingDye, integrate_exposure, jump
from simulators.blinking import stationary_states as _stationary
from simulators.smlm import SMLM_DYE

BACKGROUND_PER_MS_MW = 0.05  # photons per camera pixel per ms per mW (simulators.smlm's default)
BRIGHTNESS_SIGMA = 0.3  # lognormal spread of the dyes' brightness
LOG_FRAMES = 100_000  # frames of ground truth kept (the latest)


class LiveSMLM:
    """The dyes of one field of view, frame after frame (positions: nm, origin at centre)."""

    def __init__(
        self, positions_nm: np.ndarray, rng: np.random.Generator, dye: SwitchingDye = SMLM_DYE
    ) -> None:
        self.positions_nm = np.asarray(positions_nm, np.float32)
        self.dye = dye
        n = len(self.positions_nm)
        spread = BRIGHTNESS_SIGMA
        self.brightness = rng.lognormal(-0.5 * spread**2, spread, n).astype(np.float32)
        self.states: np.ndarray | None = None  # drawn under the first frame's light
        self.frames = 0
        # per frame, the light the dyes got and how many were seen: (excitation mW,
        # activation mW, dyes on at some time in the exposure, surviving fraction)
        self.log: deque[tuple[float, float, int, float]] = deque(maxlen=LOG_FRAMES)

    def __len__(self) -> int:
        return len(self.positions_nm)

    def frame(
        self,
        power_mw: float,
        activation_mw: float,
        exposure_ms: float,
        gap_ms: float,
        gated: bool,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Photons each dye sends to the camera in this exposure (most are 0)."""
        light = self.dye.rates(power_mw, activation_mw)
        if self.states is None:
            self.states = _stationary(len(self), light, rng)
        on, self.states = integrate_exposure(self.states, exposure_ms, light, rng)
        gap = self.dye.rates(0.0) if gated else light
        self.states = jump(self.states, gap_ms, gap, rng)
        self.frames += 1
        seen = int(np.count_nonzero(on))
        self.log.append((power_mw, activation_mw, seen, self.surviving_fraction()))
        scale = np.float32(self.dye.photons_per_ms_mw * exposure_ms * power_mw)
        return on * self.brightness * scale

    def surviving_fraction(self) -> float:
        """Dyes not yet bleached."""
        if self.states is None or len(self) == 0:
            return 1.0
        return float(np.mean(self.states != BLEACHED))

    def on_count(self) -> int:
        """Dyes on at this moment."""
        return 0 if self.states is None else int(np.count_nonzero(self.states == ON))
