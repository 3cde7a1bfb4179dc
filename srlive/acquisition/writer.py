"""Per-series OME-Zarr stores and reconstructors; the synchronous engine subscriber.

:meth:`SeriesWriter.on_set` stores and reconstructs a set on the calling thread (protocols);
the live pipeline (:mod:`srlive.pipeline`) uses :meth:`SeriesWriter.series_for`,
:meth:`~SeriesWriter.write_raw` and :meth:`~SeriesWriter.write_sr` from its own threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.acquisition.engine import EXTRA_FRAME_COLUMNS, SetPlan
from srlive.acquisition.modalities import Modality
from srlive.learn.geometry import Geometry
from srlive.profiles import Profile
from srlive.recon.fluctuation.method import FLUCTUATION_METHODS, FluctuationSettings, RollingWindow
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters, pattern_columns, pattern_row
from srlive.recon.wiener_sim import WienerSIM
from srlive.storage.guard import OutputLock, claim_output
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import AcquisitionStore

log = logging.getLogger(__name__)

AVAILABLE_RECONSTRUCTIONS = (
    "wiener-sim",
    "dl-sim3",
    "dl-sim9",
    "dl-denoise",
    "dl-wf2sr",
    *FLUCTUATION_METHODS,
)
SR_EXTRA_COLUMNS = ("recon_ms", "confidence", "latency_ms")
WINDOW_COLUMNS = ("window_first_t", "window_frames")  # fluctuation SR rows: what each window holds
REFINE_EVERY_SETS = 10  # live pattern refinement (≈0.2–0.8 s on 2 cores per estimate)
TIMES_KEPT = 10_000  # reconstruction times kept for summaries (bounded: long runs stay flat)


def _optics(profile: Profile, modality: Modality, line: int, offset_adu: float) -> SIMOptics:
    """The profile's optics for ``line`` with the modality's layout (its SLM pattern as the
    nominal one when its angles are the modality's)."""
    optics = SIMOptics.from_profile(profile, line)
    nominal = optics.nominal
    if nominal is not None and nominal.angles_deg is not None:
        nominal = nominal if len(nominal.angles_deg) == modality.n_angles else None
    fields = optics.model_dump()
    fields.update(
        n_angles=modality.n_angles,
        n_phases=modality.n_phases,
        offset_adu=offset_adu,
        nominal=nominal.model_dump() if nominal else None,
    )
    return SIMOptics(**fields)


class SIMReconstructor:
    """Wiener SIM calibrated on the first set of its series and refined as sets arrive.

    The first set is estimated around the pattern the profile puts on the SLM (the nominal
    period and angles; the fallback for an angle whose fringe is not found); every
    :data:`REFINE_EVERY_SETS`-th set is re-estimated next to the last estimate, which stays
    the fallback. The estimate in use goes into every SR row (``pattern_*`` columns).
    """

    def __init__(
        self,
        profile: Profile,
        modality: Modality,
        frame_shape: tuple[int, int],
        line: int,
        offset_adu: float,
    ) -> None:
        self.spec = (SIMReconstructor, (profile, modality, frame_shape, line, offset_adu))
        self.sim = WienerSIM.from_optics(frame_shape, _optics(profile, modality, line, offset_adu))
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)
        self.sets_seen = 0

    upscale = 2

    def current_params(self) -> SIMParameters | None:
        """The pattern estimate in use (the inference child's when it runs there)."""
        return getattr(self, "child_sim_params", None) or self.sim.params

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        if self.sim.params is None:
            self.sim.calibrate(frames)
        elif self.sets_seen % REFINE_EVERY_SETS == 0:
            self.sim.refine(frames)
        self.sets_seen += 1
        start = time.perf_counter()
        result = self.sim.reconstruct(frames)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return result, float("nan")


class FluctuationReconstructor:
    """eSRRF or SOFI of a window of ``window_sets`` consecutive sets (the burst stream).

    Called with the window's frames, oldest first (the pipeline keeps the window's sets in
    the ring; :meth:`SeriesWriter.on_set` keeps them in a :class:`RollingWindow`).
    """

    def __init__(self, settings: FluctuationSettings, offset_adu: float) -> None:
        self.spec = (FluctuationReconstructor, (settings, offset_adu))
        self.settings = settings
        self.offset_adu = offset_adu
        self.upscale = settings.upscale
        self.window_sets = settings.sets_per_window
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        result = self.settings.reconstruct(frames, self.offset_adu)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return result, float("nan")


def fluctuation_for(
    settings: FluctuationSettings | None, method: str, set_frames: int
) -> FluctuationSettings:
    """``settings`` with ``method``; without settings (a protocol's bursts), or when their
    step is not the series' set size, every set is one window (the method's defaults)."""
    base = (settings or FluctuationSettings()).model_dump()
    base["method"] = method
    if settings is None or base["step"] != set_frames:
        base["window"] = base["step"] = set_frames
    return FluctuationSettings(**base)


class ModelReconstructor:
    """A learned model (shipped weights) with its confidence score per output.

    The weights are loaded on the first call, in the process that makes it: with inference
    in a child process the acquisition process only reads the file's header (its output
    grid), never the model. The 3-frame SIM model keeps its series' fringe
    (:class:`~srlive.learn.single_phase_input.FringeTracker`: measured blind on the first
    set and every few sets, in between only each set's phases), as Wiener SIM's live
    reconstructor keeps its pattern estimate.
    """

    def __init__(
        self,
        method: str,
        offset_adu: float,
        geometry: Geometry | None = None,
        device: str = "auto",
    ) -> None:
        from srlive.learn.infer import resolve_weights
        from srlive.learn.weights_meta import read_weights_meta

        # how to build the same reconstructor elsewhere (the inference process)
        self.spec = (ModelReconstructor, (method, offset_adu, geometry, device))
        self._args = (method, device, offset_adu, geometry)
        header = read_weights_meta(resolve_weights(method))
        self.upscale = header.upscale
        self.error_map = header.uncertainty  # its results carry an error map (last_error)
        self.last_error: np.ndarray | None = None  # the latest result's expected error map
        self._model: Any = None
        self._fringe: Any = None  # the series' FringeTracker (3-frame SIM model), once loaded
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    @property
    def loaded(self) -> bool:
        """The model is loaded in this process."""
        return self._model is not None

    @property
    def model(self) -> Any:
        if self._model is None:
            from srlive.learn.infer import learned

            self._model = learned(*self._args)
            if self._model.task.inputs == "single-phase":
                from srlive.learn.single_phase_input import FringeTracker

                self._fringe = FringeTracker()
        return self._model

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        model = self.model
        start = time.perf_counter()
        result = model(frames, fringe=self._fringe)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        self.last_error = result.uncertainty
        return result.image, result.confidence


@dataclass
class SeriesState:
    """One (position, channel) series: its store, reconstructor and counters."""

    name: str
    store: AcquisitionStore
    recon: SIMReconstructor | ModelReconstructor | FluctuationReconstructor | None
    window: RollingWindow | None = None  # on_set's window of sets (fluctuation methods)
    sets: int = 0  # raw sets stored
    frames: int = 0
    sr_images: int = 0
    sr_skipped: int = 0
    next_t: int = 0  # time index the next set of this series gets (the live pipeline)


@dataclass
class SeriesWriter:
    """Writes each complete set (and its SR image) into its series' OME-Zarr store."""

    profile: Profile
    frame_shape: tuple[int, int]
    camera: NoiseRecord  # the camera's noise model, recorded in every series' store
    run_info: dict[str, Any]
    path_for: Callable[[str], Path]
    overwrite: bool = False
    on_result: Callable[[SetPlan, np.ndarray, np.ndarray | None, dict[str, Any]], None] | None = (
        None
    )
    series: dict[str, SeriesState] = field(default_factory=dict)
    device: str = "auto"  # for learned reconstructions
    fluctuation: FluctuationSettings | None = None  # rolling windows (None: one per set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def offset_adu(self) -> float:
        """The camera offset subtracted before reconstruction."""
        return self.camera.offset_adu

    def series_for(self, name: str, plan: SetPlan, reconstruction: str | None) -> SeriesState:
        """The series ``name``, created (store and reconstructor) by its first set."""
        with self._lock:
            return self.series.get(name) or self._open(name, plan, reconstruction)

    def _open(self, name: str, plan: SetPlan, reconstruction: str | None) -> SeriesState:
        modality = plan.modality
        recon: SIMReconstructor | ModelReconstructor | FluctuationReconstructor | None = None
        run_extra: dict[str, Any] = {}
        if reconstruction in FLUCTUATION_METHODS and not modality.structured:
            settings = fluctuation_for(self.fluctuation, reconstruction, modality.frames)
            recon = FluctuationReconstructor(settings, self.offset_adu)
            run_extra["fluctuation"] = settings.parameters()
        elif reconstruction == "wiener-sim" and modality.n_angles * modality.n_phases >= 9:
            recon = SIMReconstructor(
                self.profile, modality, self.frame_shape, plan.line, self.offset_adu
            )
        elif reconstruction in AVAILABLE_RECONSTRUCTIONS or str(reconstruction).endswith(
            ".safetensors"
        ):
            geometry = Geometry.from_profile(self.profile, plan.line)
            recon = ModelReconstructor(str(reconstruction), self.offset_adu, geometry, self.device)
        elif reconstruction is not None:
            log.warning(
                "%s: reconstruction %r is not available in this version; storing raw frames only",
                name,
                reconstruction,
            )
        up = recon.upscale if recon else 1
        sr_shape = (up * self.frame_shape[0], up * self.frame_shape[1]) if recon else None
        store = AcquisitionStore.create(
            self.path_for(name),
            frame_shape=self.frame_shape,
            pixel_nm=self.profile.optics.pixel_nm,
            n_angles=modality.n_angles,
            n_phases=modality.n_phases,
            sr_shape=sr_shape,
            sr_pixel_nm=self.profile.optics.pixel_nm / up if recon else None,
            laser_lines=self.profile.laser_lines,
            profile=self.profile.model_dump(mode="json"),
            run={
                **self.run_info,
                "series": name,
                "modality": modality.name,
                "laser_line": plan.line,
                "power_mw": plan.power_mw,
                "exposure_ms": plan.exposure_ms,
                **run_extra,
            },
            sr_method=reconstruction if recon else None,
            overwrite=self.overwrite,
            camera=self.camera,
            sr_error=isinstance(recon, ModelReconstructor) and recon.error_map,
            extra_frame_columns=EXTRA_FRAME_COLUMNS,
            extra_sr_columns=SR_EXTRA_COLUMNS
            + (
                pattern_columns(modality.n_angles, modality.n_phases)
                if isinstance(recon, SIMReconstructor)
                else WINDOW_COLUMNS
                if isinstance(recon, FluctuationReconstructor)
                else ()
            ),
        )
        window = (
            RollingWindow(recon.settings) if isinstance(recon, FluctuationReconstructor) else None
        )
        state = SeriesState(name, store, recon, window)
        self.series[name] = state
        return state

    def on_set(
        self,
        plan: SetPlan,
        frames: np.ndarray,
        metas: list[dict[str, Any]],
        name: str,
        reconstruction: str | None,
    ) -> None:
        """Store a complete set; reconstruct it when the series has a reconstructor."""
        state = self.series_for(name, plan, reconstruction)
        t = state.next_t
        state.next_t += 1
        self.write_raw(state, t, plan, frames, metas)
        sr = None
        info: dict[str, Any] = {"series": name, "t": t}
        burst = frames if state.window is None else state.window.add(frames)
        if state.recon is not None and burst is None:  # the first sets of a window
            self.write_skipped(state, t, {"time_s": metas[-1]["time_s"]})
        elif state.recon is not None:
            sr, confidence = state.recon(burst)
            info["recon_ms"] = state.recon.times_ms[-1]
            info["confidence"] = confidence
            meta = {"time_s": metas[-1]["time_s"], "recon_ms": info["recon_ms"]}
            if isinstance(state.recon, FluctuationReconstructor):
                meta.update(
                    window_first_t=t - state.recon.window_sets + 1, window_frames=len(burst)
                )
            error = getattr(state.recon, "last_error", None)
            self.write_sr(state, t, sr, {**meta, "confidence": confidence}, error)
        if self.on_result:
            self.on_result(plan, frames, sr, info)

    def write_raw(
        self,
        state: SeriesState,
        t: int,
        plan: SetPlan,
        frames: np.ndarray,
        metas: list[dict[str, Any]],
    ) -> None:
        """Store the raw set ``frames`` (n, H, W) as time point ``t`` of ``state``."""
        modality = plan.modality
        raw_set = frames.reshape(modality.n_angles, modality.n_phases, *frames.shape[-2:])
        state.store.write_set(t, raw_set, metas)
        state.sets += 1
        state.frames += len(frames)

    def write_sr(
        self,
        state: SeriesState,
        t: int,
        sr: np.ndarray,
        meta: dict[str, Any],
        error: np.ndarray | None = None,
    ) -> None:
        """Store the SR image of set ``t``, its table row (time_s, recon_ms, pattern...) and
        a learned model's expected error map (``sr_error``)."""
        if isinstance(state.recon, SIMReconstructor) and (params := state.recon.current_params()):
            meta = {**meta, **pattern_row(params)}
        state.store.write_sr(t, sr, {"t": t, **meta}, error)
        state.sr_images += 1

    def write_skipped(self, state: SeriesState, t: int, meta: dict[str, Any]) -> None:
        """Record that set ``t`` was not reconstructed (the live pipeline fell behind)."""
        state.store.write_sr_skipped(t, {"t": t, **meta})
        state.sr_skipped += 1

    def close(self, complete: bool) -> None:
        """Close every series' store (all of them, even after one fails); the first error."""
        first: Exception | None = None
        for state in self.series.values():
            try:
                state.store.close(complete=complete)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    @property
    def failed(self) -> str | None:
        """The first failed store write of any series, or None."""
        return next((s.store.failed for s in self.series.values() if s.store.failed), None)

    @property
    def frames_stored(self) -> int:
        return sum(s.frames for s in self.series.values())

    @property
    def sr_images(self) -> int:
        return sum(s.sr_images for s in self.series.values())

    @property
    def sr_skipped(self) -> int:
        return sum(s.sr_skipped for s in self.series.values())

    @property
    def max_upscale(self) -> int:
        """The finest SR grid any series here may produce (SR pixels per camera pixel)."""
        ups = [s.recon.upscale for s in self.series.values() if s.recon is not None]
        return max([2, (self.fluctuation or FluctuationSettings()).upscale, *ups])

    def recon_times_ms(self) -> list[float]:
        return [t for s in self.series.values() if s.recon for t in s.recon.times_ms]


def create_root_group(path: Path, attrs: dict[str, Any], overwrite: bool) -> OutputLock:
    """The root of a multi-series store: a plain Zarr v3 group describing its series.

    The directory is claimed (see :func:`srlive.storage.guard.claim_output`); the caller
    holds the returned lock until the protocol's stores are closed.
    """
    lock = claim_output(path, overwrite=overwrite)
    try:
        zarr.open_group(str(path), mode="a", zarr_format=3, attributes={"srlive": attrs})
    except BaseException:
        lock.release()
        raise
    return lock
