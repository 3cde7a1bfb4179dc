"""The simulated world shared by the Micro-Manager devices of one simulated microscope.

It holds the state the devices change (laser powers and on/off, the image the SLM shows,
stage positions, the sample) and turns an exposure into a camera frame with the pure
physics of :mod:`simulators.optics`, :mod:`simulators.illumination`,
:mod:`simulators.photophysics`, :mod:`simulators.camera_model` and
:mod:`simulators.imaging`. Everything expensive is cached by what it depends on, so a
static sample under the nine SIM patterns costs one linear combination per frame.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulators.camera_model import CameraModel, bin_to_camera
from simulators.illumination import IlluminationPattern, illumination_from_slm
from simulators.imaging import FringeCache, expected_from_cache, render_expected
from simulators.live_blinking import LiveBlinking, illumination_at
from simulators.live_smlm import LiveSMLM, SMLMWorld
from simulators.optics import Optics, blur, otf_2d
from simulators.photophysics import bleach_survival, render_points
from simulators.samples import Sample, load_sample_file, make_sample

EMISSION_NM = {405: 450.0, 488: 510.0, 561: 600.0, 640: 670.0}
UNIFORM = IlluminationPattern(components=(), dc=1.0)
MOTION_STEP_S = 0.025  # a live sample is moved on at most every 25 ms
FLUCTUATION_DYES_PER_UM = 50.0  # blinking labelling (simulators.fluctuation's default)
MAX_DARK_GAP_MS = 60_000.0  # longer darkness leaves the dyes at their dark equilibrium anyway


@dataclass
class LaserState:
    """What one laser line is doing."""

    line: int
    max_power_mw: float
    power_mw: float = 0.0
    on: bool = False
    gated: bool = True


@dataclass
class _SLMState:
    displayed: np.ndarray
    displayed_id: int
    sequence: list[tuple[int, np.ndarray]] = field(default_factory=list)
    running: bool = False
    index: int = 0


class SimulatedWorld(SMLMWorld):
    """Sample + optics + photophysics + camera physics behind the simulated devices."""

    def __init__(
        self,
        *,
        frame_shape: tuple[int, int] = (512, 512),
        optics: Optics | None = None,
        camera: CameraModel | None = None,
        oversample: int = 2,
        seed: int = 0,
        sample_kind: str = "microtubules",
        motion: bool = True,
        brightness: float = 20.0,
        modulation_depth: float = 0.8,
        bleach_half_dose_mj: float = 200.0,
        smlm_threshold_mw: float = 100.0,
        slm_pixel_nm_at_sample: float = 65.0,
        slm_shape: tuple[int, int] = (1536, 2048),
        fluctuation: bool = False,
    ) -> None:
        self.lock = threading.RLock()
        self.optics = optics or Optics()
        self.camera = camera or CameraModel()
        self.oversample = oversample
        self.seed = seed
        self.motion = motion
        self.brightness = brightness
        self.modulation_depth = modulation_depth
        self.bleach_half_dose_mj = bleach_half_dose_mj
        self.smlm_threshold_mw = smlm_threshold_mw
        self.slm_pixel_nm_at_sample = slm_pixel_nm_at_sample
        self.slm_shape = slm_shape
        self.fluctuation = fluctuation  # blinking dyes below the SMLM threshold
        self.frame_shape = frame_shape
        self.sample_kind = sample_kind
        self.sample_file: Path | None = None
        self.sample_file_pixel_nm = 65.0
        self.lasers: dict[int, LaserState] = {}
        self.z_um = 0.0
        self.xy_um = (0.0, 0.0)
        self._ids = itertools.count(1)
        self._slm = _SLMState(np.zeros(slm_shape, np.uint8), 0)
        self._rng = np.random.default_rng(seed + 1)
        self._noise_rng = np.random.default_rng(seed + 2)  # camera noise, drawn outside the lock
        self._noise_lock = threading.Lock()
        self._dose_mj = 0.0
        self._dose_clock = time.perf_counter()
        self._last_frame_t: float | None = None
        self._frame_counter = 0
        self._patterns: dict[tuple[int, int], IlluminationPattern] = {}
        self._otfs: dict[tuple[int, float], np.ndarray] = {}
        self._fringe_key: tuple | None = None
        self._fringe: FringeCache | None = None
        self._smlm: LiveSMLM | None = None  # the SMLM dyes of the field of view
        self._smlm_key: tuple | None = None
        self.smlm_drift_nm_per_frame = 0.0  # SMLM: the sample drifts this much along x and y
        self._live: LiveBlinking | None = None
        self._live_key: tuple | None = None
        self._live_t: float | None = None
        self.sample: Sample = self._build_sample()

    # --- geometry ------------------------------------------------------------------
    @property
    def pixel_nm(self) -> float:
        """Camera pixel at the sample plane."""
        return self.optics.pixel_nm

    @property
    def grid_shape(self) -> tuple[int, int]:
        return (self.frame_shape[0] * self.oversample, self.frame_shape[1] * self.oversample)

    @property
    def grid_pixel_nm(self) -> float:
        return self.pixel_nm / self.oversample

    def readout_ms(self) -> float:
        return self.camera.readout_ms(self.frame_shape[0])

    def frame_interval_ms(self, exposure_ms: float) -> float:
        """Shortest frame period: exposure + rolling readout."""
        return self.camera.min_frame_interval_ms(exposure_ms, self.frame_shape[0])

    # --- sample --------------------------------------------------------------------
    def _build_sample(self) -> Sample:
        if self.sample_file is not None:
            return load_sample_file(
                self.sample_file, self.sample_file_pixel_nm, self.grid_shape, self.grid_pixel_nm
            )
        return make_sample(
            self.sample_kind,
            self.grid_shape,
            self.grid_pixel_nm,
            seed=self.seed,
            motion=self.motion,
        )

    def _reset_sample(self) -> None:
        with self.lock:
            self.sample = self._build_sample()
            self._fringe_key = None
            self._smlm = None
            self._live = None
            self._dose_mj = 0.0

    def set_sample_kind(self, kind: str) -> None:
        with self.lock:
            self.sample_kind, self.sample_file = kind, None
            self._reset_sample()

    def set_sample_file(self, path: Path) -> None:
        with self.lock:
            previous = self.sample_file
            self.sample_file = Path(path)
            try:
                self._reset_sample()
            except Exception:
                self.sample_file = previous
                self._reset_sample()
                raise
            self.sample_kind = "file"
            self.xy_um = (0.0, 0.0)

    def set_sample_file_pixel_nm(self, pixel_nm: float) -> None:
        with self.lock:
            self.sample_file_pixel_nm = pixel_nm
            if self.sample_file is not None:
                self._reset_sample()

    def set_seed(self, seed: int) -> None:
        with self.lock:
            self.seed = seed
            self._rng = np.random.default_rng(seed + 1)
            with self._noise_lock:
                self._noise_rng = np.random.default_rng(seed + 2)
            self._reset_sample()

    def set_motion(self, on: bool) -> None:
        with self.lock:
            self.motion = on
            self.sample.set_motion(on and self.sample_file is None)

    def set_frame_shape(self, shape: tuple[int, int]) -> None:
        with self.lock:
            self.frame_shape = shape
            self._otfs.clear()
            self._reset_sample()

    def set_fluctuation(self, on: bool) -> None:
        """Blinking dyes (on/off Markov, see simulators.blinking) instead of continuous ones."""
        with self.lock:
            self.fluctuation = bool(on)
            self._live = None

    def set_modulation_depth(self, depth: float) -> None:
        with self.lock:
            self.modulation_depth = depth
            self._patterns.clear()

    def ground_truth(self) -> np.ndarray:
        """Current fluorophore density on the high-res grid, bleaching included."""
        with self.lock:
            return self.sample.density() * np.float32(self.surviving_fraction())

    # --- lasers and dose -----------------------------------------------------------
    def register_laser(self, line: int, max_power_mw: float) -> None:
        with self.lock:
            self.lasers[line] = LaserState(line=line, max_power_mw=max_power_mw)

    def set_laser(
        self,
        line: int,
        *,
        power_mw: float | None = None,
        on: bool | None = None,
        gated: bool | None = None,
    ) -> None:
        with self.lock:
            self._accrue_ungated_dose()
            laser = self.lasers[line]
            if power_mw is not None:
                if not 0.0 <= power_mw <= laser.max_power_mw:
                    raise ValueError(f"power {power_mw} mW outside 0–{laser.max_power_mw} mW")
                laser.power_mw = power_mw
            if on is not None:
                laser.on = on
            if gated is not None:
                laser.gated = gated

    def all_light_off(self) -> None:
        with self.lock:
            for laser in self.lasers.values():
                self.set_laser(laser.line, on=False)

    def _accrue_ungated_dose(self) -> None:
        """Lasers left on without exposure gating light the sample all the time."""
        now = time.perf_counter()
        dt_ms = (now - self._dose_clock) * 1000.0
        self._dose_clock = now
        for laser in self.lasers.values():
            if laser.on and not laser.gated:
                self._dose_mj += laser.power_mw * dt_ms / 1000.0

    def dose_mj(self) -> float:
        with self.lock:
            self._accrue_ungated_dose()
            return self._dose_mj

    def surviving_fraction(self) -> float:
        return float(bleach_survival(self.dose_mj(), self.bleach_half_dose_mj))

    # --- SLM -----------------------------------------------------------------------
    def slm_display(self, image: np.ndarray) -> None:
        with self.lock:
            self._slm.displayed = np.asarray(image, np.uint8)
            self._slm.displayed_id = next(self._ids)

    def slm_displayed_image(self) -> np.ndarray:
        return self._slm.displayed.copy()

    def slm_load_sequence(self, images: list[np.ndarray]) -> None:
        with self.lock:
            self._slm.sequence = [(next(self._ids), img) for img in images]
            self._slm.index = 0

    def slm_start_sequence(self) -> None:
        with self.lock:
            if not self._slm.sequence:
                raise RuntimeError("no SLM sequence loaded")
            self._slm.running, self._slm.index = True, 0

    def slm_stop_sequence(self) -> None:
        with self.lock:
            self._slm.running = False

    def _slm_image_for_exposure(self) -> tuple[int, np.ndarray, int]:
        """The SLM image lit during this exposure; a running sequence advances per frame."""
        slm = self._slm
        if slm.running:
            index = slm.index % len(slm.sequence)
            image_id, image = slm.sequence[index]
            slm.displayed, slm.displayed_id = image, image_id
            slm.index += 1
            return image_id, image, index
        return slm.displayed_id, slm.displayed, -1

    def _pattern(self, image_id: int, image: np.ndarray, line: int) -> IlluminationPattern:
        key = (image_id, line)
        pattern = self._patterns.get(key)
        if pattern is None:
            if not image.any() or image.all():
                pattern = UNIFORM
            else:
                fov = (self.frame_shape[0] * self.pixel_nm, self.frame_shape[1] * self.pixel_nm)
                pattern = illumination_from_slm(
                    image,
                    self.slm_pixel_nm_at_sample,
                    self.optics.na,
                    float(line),
                    modulation_depth=self.modulation_depth,
                    fov_nm=fov,
                )
            if len(self._patterns) > 256:
                self._patterns.clear()
            self._patterns[key] = pattern
        return pattern

    # --- stages --------------------------------------------------------------------
    def set_z(self, z_um: float) -> None:
        with self.lock:
            self.z_um = z_um

    def set_xy(self, x_um: float, y_um: float) -> None:
        with self.lock:
            self.xy_um = (x_um, y_um)

    # --- image formation -----------------------------------------------------------
    def _otf(self, line: int) -> np.ndarray:
        key = (line, round(self.z_um, 4))
        otf = self._otfs.get(key)
        if otf is None:
            otf = otf_2d(
                self.grid_shape,
                self.grid_pixel_nm,
                self.optics.na,
                EMISSION_NM.get(line, line + 30.0),
                n_immersion=self.optics.n_immersion,
                defocus_nm=self.z_um * 1000.0,
            )
            if len(self._otfs) > 32:
                self._otfs.clear()
            self._otfs[key] = otf
        return otf

    def _density_in_view(self) -> np.ndarray:
        """The sample under the objective: 3D samples are cut at focus, xy shifts it."""
        density = self.sample.density()
        if density.ndim == 3:
            dz = self.sample.z_pixel_nm or self.grid_pixel_nm
            plane = int(
                np.clip(
                    round(self.z_um * 1000.0 / dz + (density.shape[0] - 1) / 2),
                    0,
                    density.shape[0] - 1,
                )
            )
            density = density[plane]
        shift = (
            round(self.xy_um[1] * 1000.0 / self.grid_pixel_nm),
            round(self.xy_um[0] * 1000.0 / self.grid_pixel_nm),
        )
        if shift != (0, 0):
            density = np.roll(density, (-shift[0], -shift[1]), axis=(0, 1))
        return density

    def _fringe_cache(self, line: int) -> FringeCache:
        """Blurred sample and fringe side bands for the current sample state."""
        key = (self.sample.version, line, round(self.z_um, 4), self.xy_um, self.frame_shape)
        if self._fringe_key != key or self._fringe is None:
            self._fringe = FringeCache(
                self._density_in_view(), self._otf(line), self.oversample, self.grid_pixel_nm
            )
            self._fringe_key = key
        return self._fringe

    def _advance_sample(self) -> None:
        """Move a live sample on by the time since its last update (in ≥ 25 ms steps)."""
        now = time.perf_counter()
        if self._last_frame_t is None or not self.sample.motion:
            self._last_frame_t = now
            return
        if now - self._last_frame_t >= MOTION_STEP_S:
            self.sample.advance(now - self._last_frame_t)
            self._last_frame_t = now

    def _expected_photons(
        self, line: int, pattern: IlluminationPattern, scale: float
    ) -> np.ndarray:
        """Photons per camera pixel: cached side bands for a still sample, direct otherwise."""
        if self.sample.motion:  # the sample changes every few frames: one real FFT pair
            return render_expected(
                self._density_in_view(),
                pattern,
                self._otf(line),
                self.oversample,
                scale,
                self.grid_pixel_nm,
            )
        return expected_from_cache(self._fringe_cache(line), pattern, scale)

    def expose(
        self, exposure_ms: float, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, float | int | str]]:
        """Acquire one camera frame (into ``out`` if given); returns it and its metadata."""
        with self.lock:
            self._advance_sample()
            self._accrue_ungated_dose()
            image_id, slm_image, slm_index = self._slm_image_for_exposure()
            lit = [la for la in self.lasers.values() if la.on and la.power_mw > 0]
            survival = self.surviving_fraction()
            photons = np.zeros(self.frame_shape, np.float32)
            blinks = self._advance_live_blinking(lit, exposure_ms, survival)
            smlm = [
                la
                for la in lit
                if la.line not in self.activation_lines and la.power_mw >= self.smlm_threshold_mw
            ]
            if smlm:
                photons += self._smlm_frame(smlm, lit, exposure_ms)
            for laser in lit:
                scale = laser.power_mw * exposure_ms * self.brightness * survival
                if smlm and (laser in smlm or laser.line in self.activation_lines):
                    pass  # imaged (or activating) above
                elif blinks is not None:
                    pattern = self._pattern(image_id, slm_image, laser.line)
                    unbleached = laser.power_mw * exposure_ms * self.brightness
                    photons += self._fluctuation_frame(laser.line, pattern, blinks, unbleached)
                else:
                    pattern = self._pattern(image_id, slm_image, laser.line)
                    photons += self._expected_photons(laser.line, pattern, scale)
                if laser.gated:
                    self._dose_mj += laser.power_mw * exposure_ms / 1000.0
            self._frame_counter += 1
            meta: dict[str, float | int | str] = {
                "SimFrame": self._frame_counter,
                "SimSLMPattern": slm_index,
                "SimSLMImageId": image_id,
                "SimPowerMW": ",".join(f"{la.line}:{la.power_mw:g}" for la in lit) or "none",
                "SimExposureMs": exposure_ms,
                "SimZUm": self.z_um,
                "SimDoseMJ": round(self._dose_mj, 6),
                "SimSurviving": round(survival, 6),
            }
        # the camera's noise (most of a frame's CPU time) is drawn outside the world's lock,
        # so a streaming camera never starves a laser switched off from another thread
        with self._noise_lock:
            frame = self.camera.expose(photons, exposure_ms, self._noise_rng, out=out)
        # lets a store prove it kept this frame
        meta["SimFrameCRC"] = zlib.crc32(np.ascontiguousarray(frame).data)
        return frame, meta

    def _advance_live_blinking(
        self, lit: list[LaserState], exposure_ms: float, survival: float
    ) -> np.ndarray | None:
        """Fluctuation mode: move the persistent dyes on by one frame (once per exposure)."""
        below = [la for la in lit if la.power_mw < self.smlm_threshold_mw]
        if not self.fluctuation or not below:
            return None
        key = (self.sample.version, round(self.z_um, 4), self.xy_um, self.frame_shape)
        if self._live is None:
            self._live = LiveBlinking(
                self.grid_shape, self.grid_pixel_nm, FLUCTUATION_DYES_PER_UM, self.seed
            )
            self._live_key = None
        if key != self._live_key:
            self._live.place(self._density_in_view())
            self._live_key = key
        now = time.perf_counter()  # the dyes relax in the dark between frames
        gap_ms = 0.0 if self._live_t is None else (now - self._live_t) * 1000.0 - exposure_ms
        self._live_t = now
        return self._live.frame(
            sum(la.power_mw for la in below),
            exposure_ms,
            float(np.clip(gap_ms, 0.0, MAX_DARK_GAP_MS)),
            any(not la.gated for la in below),
            survival,
            self._rng,
        )

    def _fluctuation_frame(
        self, line: int, pattern: IlluminationPattern, blinks: np.ndarray, scale: float
    ) -> np.ndarray:
        """Photons per camera pixel of this frame's blinking dyes under ``pattern``."""
        live = self._live
        if live is None:
            raise RuntimeError("no blinking dyes yet: _advance_live_blinking places them first")
        weights = (
            blinks if pattern.is_uniform else blinks * illumination_at(pattern, live.positions_nm)
        )
        density = render_points(live.positions_nm, weights, self.grid_shape, self.grid_pixel_nm)
        blurred = blur(density, self._otf(line))
        binned = bin_to_camera(np.clip(blurred, 0, None), self.oversample)
        return binned * np.float32(scale / self.oversample**2)
