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
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulators.blinking import BLEACHED, ON, SwitchingDye, integrate_exposure, jump
from simulators.blinking import stationary_states as _stationary
from simulators.camera_model import bin_to_camera
from simulators.optics import blur
from simulators.photophysics import render_points, sample_emitters
from simulators.smlm import SMLM_DYE

BACKGROUND_PER_MS_MW = 0.05  # photons per camera pixel per ms per mW (simulators.smlm's default)
BRIGHTNESS_SIGMA = 0.3  # lognormal spread of the dyes' brightness
LOG_FRAMES = 100_000  # frames of ground truth kept (the latest)
EMITTERS_PER_UNIT_DENSITY = 5.0  # SMLM labelling: ~1 dye per 6 nm of microtubule


@dataclass(frozen=True)
class SMLMLight:
    """The light of one exposure: excitation and activation (mW), exposure and the dark gap
    to the next frame (ms), and whether the lasers are off in that gap (gated)."""

    power_mw: float
    activation_mw: float
    exposure_ms: float
    gap_ms: float
    gated: bool


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

    def image(
        self,
        light: SMLMLight,
        grid: tuple[tuple[int, int], float, int],
        otf: np.ndarray,
        drift_nm_per_frame: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Expected photons per camera pixel of the next exposure: the dyes on in it, on the
        simulation grid ``(shape, pixel nm, oversampling)``, blurred by ``otf``, binned to
        the camera, plus background; the sample drifts ``drift_nm_per_frame`` along x, y."""
        shape, pixel_nm, oversample = grid
        emitted = self.frame(
            light.power_mw, light.activation_mw, light.exposure_ms, light.gap_ms, light.gated, rng
        )
        on = emitted > 0
        positions = self.positions_nm[on]
        if drift_nm_per_frame:
            positions = positions + np.float32(drift_nm_per_frame * self.frames)
        density = render_points(positions, emitted[on], shape, pixel_nm)
        binned = bin_to_camera(np.clip(blur(density, otf), 0, None), oversample)
        return binned + np.float32(BACKGROUND_PER_MS_MW * light.exposure_ms * light.power_mw)

    @staticmethod
    def state_of(dyes: LiveSMLM | None) -> dict[str, float]:
        """How many dyes, how many on now, the fraction not bleached, frames so far."""
        if dyes is None:
            return {"dyes": 0, "on": 0, "surviving": 1.0, "frames": 0}
        return {
            "dyes": len(dyes),
            "on": dyes.on_count(),
            "surviving": dyes.surviving_fraction(),
            "frames": dyes.frames,
        }

    def surviving_fraction(self) -> float:
        """Dyes not yet bleached."""
        if self.states is None or len(self) == 0:
            return 1.0
        return float(np.mean(self.states != BLEACHED))

    def on_count(self) -> int:
        """Dyes on at this moment."""
        return 0 if self.states is None else int(np.count_nonzero(self.states == ON))


class SMLMWorld:
    """The SMLM part of :class:`simulators.world.SimulatedWorld` (a mixin: it reads the
    world's sample, field of view, grid, OTF, camera timing and random generator)."""

    activation_lines = (405,)  # these lines return photoswitching dyes, they image nothing
    # set by the world's __init__
    _smlm: LiveSMLM | None
    _smlm_key: tuple | None
    smlm_drift_nm_per_frame: float  # the sample drifts this much along x and y per frame

    def _smlm_frame(self, excitation: list, lit: list, exposure_ms: float) -> np.ndarray:
        """SMLM: the photoswitching dyes (:class:`LiveSMLM`), drawn once per sample and field
        of view (a moving sample is not followed), switched by the excitation lines (at or
        above the threshold) and the activation lines, imaged."""
        world: Any = self
        key = (id(world.sample), round(world.z_um, 4), world.xy_um, world.frame_shape)
        if self._smlm is None or key != self._smlm_key:
            density = world._density_in_view()
            positions = sample_emitters(
                density, world.grid_pixel_nm, EMITTERS_PER_UNIT_DENSITY, world._rng
            )
            self._smlm, self._smlm_key = LiveSMLM(positions, world._rng), key
        light = SMLMLight(
            power_mw=float(sum(la.power_mw for la in excitation)),
            activation_mw=float(sum(la.power_mw for la in lit if la.line in self.activation_lines)),
            exposure_ms=exposure_ms,
            gap_ms=world.frame_interval_ms(exposure_ms) - exposure_ms,
            gated=all(la.gated for la in lit),
        )
        grid = (world.grid_shape, world.grid_pixel_nm, world.oversample)
        otf = world._otf(excitation[0].line)
        return self._smlm.image(light, grid, otf, self.smlm_drift_nm_per_frame, world._rng)

    @property
    def smlm_dyes(self) -> LiveSMLM | None:
        """The SMLM dyes of the field of view (ground truth; None until SMLM light)."""
        return self._smlm

    def smlm_state(self) -> dict[str, float]:
        """The SMLM dyes now: how many, on, and not yet bleached (ground truth)."""
        with self.lock:  # type: ignore[attr-defined]
            return LiveSMLM.state_of(self._smlm)
