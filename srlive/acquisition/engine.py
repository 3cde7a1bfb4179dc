"""The acquisition engine: sets of raw frames on a Micro-Manager core, exactly and safely.

The engine executes :class:`SetPlan` items (one SR image's worth of raw frames each). It
uses hardware sequencing where the devices allow it (the SLM steps through an uploaded
image sequence on each camera exposure, the camera runs a sequence acquisition, the laser
is gated by the exposure) and software timing otherwise. Each frame is stamped with its
metadata and every frame is accounted for: delivered, or counted as dropped. Subscribers
(pipeline, writer, viewer, optimizer) listen to :class:`EngineEvents`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from psygnal import Signal, SignalGroup

from srlive.acquisition import camera_faults
from srlive.acquisition.modalities import Modality
from srlive.hardware.microscope import Microscope

# frame metadata the engine adds beyond the store's standard columns
EXTRA_FRAME_COLUMNS = ("k", "position", "c", "camera_time_ms", "camera_crc", "exposure_end_s")
MAX_BATCH_SETS = 256
# waiting for the next sequenced frame: a poll every quarter exposure, within these bounds
# (a poll and its sleep cost ~25 µs of CPU, so polling every 0.2 ms alone took ~9 % of a core;
# the longest poll adds at most 1 ms to a frame's latency)
POLL_MIN_S, POLL_MAX_S = 0.0005, 0.001

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """The camera ended a sequence before delivering its frames (its thread failed)."""


class DoseBudgetExceeded(RuntimeError):
    """The per-sample light-dose budget would be exceeded by the next set."""


@dataclass(frozen=True)
class SetPlan:
    """One set of raw frames: what to light, how, and where."""

    index: int
    t: int
    modality: Modality
    line: int
    power_mw: float
    exposure_ms: float
    slm_images: tuple[np.ndarray, ...]
    n_frames: int
    position: int = 0
    channel: str = ""
    channel_index: int = 0
    z_index: int = 0
    x_um: float | None = None
    y_um: float | None = None
    z_um: float | None = None
    min_start_s: float = 0.0
    ends_batch: bool = False  # settings of the next set are not known yet (optimizer)
    # lines lit with ``line`` through the set, (line, mW): SMLM's activation (405 nm)
    activation: tuple[tuple[int, float], ...] = ()

    @property
    def lines(self) -> dict[int, float]:
        """Every line this set lights and its power (mW)."""
        return {**dict(self.activation), self.line: self.power_mw}

    @property
    def total_power_mw(self) -> float:
        """The power of every line lit, summed (the sample's dose rate while exposed)."""
        return float(sum(self.lines.values()))

    @property
    def sample_key(self) -> int:
        """Dose is budgeted per sample: one sample per stage position."""
        return self.position


class FrameSink(Protocol):
    """Where the engine puts the frames of a set (e.g. a preallocated ring buffer slot)."""

    def claim(self, plan: SetPlan) -> np.ndarray:
        """A writable (n_frames, H, W) uint16 array for the next set of ``plan``."""
        ...

    def abandon(self, frames: np.ndarray) -> None:
        """The set in ``frames`` will not complete (stop or error): take the space back."""
        ...


@dataclass
class FrameRecord:
    """A frame and its metadata, as delivered to subscribers."""

    image: np.ndarray
    meta: dict[str, Any]


@dataclass
class EngineStats:
    """Every frame accounted for."""

    frames_acquired: int = 0
    frames_dropped: int = 0
    sets_completed: int = 0
    dose_mj: dict[int, float] = field(default_factory=dict)
    stopped_by: str | None = None


class EngineEvents(SignalGroup):
    """Signals the engine emits (from the acquisition thread).

    With a :class:`FrameSink`, ``frames`` is the sink's memory: valid until the sink reuses
    it, so a subscriber that keeps frames beyond its call copies them.
    """

    frame_ready = Signal(FrameRecord)
    set_complete = Signal(SetPlan, np.ndarray, list)  # the plan, frames (n, H, W), metadata
    finished = Signal(EngineStats)
    error = Signal(Exception)


class Engine:
    """Runs set plans on a :class:`Microscope`."""

    def __init__(
        self,
        scope: Microscope,
        *,
        hardware_sequencing: bool = True,
        dose_budget_mj: float | None = None,
        sink: FrameSink | None = None,
    ) -> None:
        self.scope = scope
        self.sink = sink
        self.core = scope.core
        self.hardware_sequencing = hardware_sequencing
        self.dose_budget_mj = (
            dose_budget_mj if dose_budget_mj is not None else scope.profile.limits.max_dose_mj
        )
        self.events = EngineEvents()
        self.stats = EngineStats()
        # the SLM images last uploaded (kept referenced, so identity comparison is safe);
        # successive runs of one engine (a live session's chunks) do not re-upload them
        self._loaded_sequence: tuple[np.ndarray, ...] | None = None
        self._t0: float | None = None  # time_s origin: the engine's first run
        self._sequence_t0 = 0.0  # engine time when the current camera sequence started
        self._stop_at_set = threading.Event()

    # --- public --------------------------------------------------------------------
    def run(
        self,
        plans: Iterable[SetPlan],
        stop: threading.Event | None = None,
        stop_at_set: threading.Event | None = None,
    ) -> EngineStats:
        """Execute the plans in order; the microscope is made safe however this ends.

        ``stop`` ends the run at the next frame (the set in progress is incomplete and
        counted as dropped); ``stop_at_set`` ends it when the set in progress completes.
        """
        stop = stop or threading.Event()
        self._stop_at_set = stop_at_set or threading.Event()
        if self._t0 is None:
            self._t0 = time.perf_counter()
        failed = True
        try:
            for batch in self._batches(plans):
                self._wait_until(batch[0].min_start_s, stop)
                if stop.is_set() or self._stop_at_set.is_set():
                    self.stats.stopped_by = "stop requested"
                    break
                runnable = self._within_budget(batch)
                if runnable:
                    self._run_batch(runnable, stop)
                if len(runnable) < len(batch):
                    self._raise_budget(batch[len(runnable)])
                if stop.is_set() or self._stop_at_set.is_set():
                    self.stats.stopped_by = "stop requested"
                    break
            failed = False
        except KeyboardInterrupt:
            self.stats.stopped_by = "interrupted"
            raise
        except Exception as exc:
            self.stats.stopped_by = self.stats.stopped_by or f"error: {exc}"
            self.events.error.emit(exc)
            raise
        finally:
            self.scope.make_safe()
            if failed:
                self._loaded_sequence = None
            self.events.finished.emit(self.stats)
        return self.stats

    def elapsed_s(self) -> float:
        """Seconds since :meth:`run` started (the clock of ``SetPlan.min_start_s``)."""
        return time.perf_counter() - self.t0

    def uses_hardware_sequencing(self, plan: SetPlan) -> bool:
        """Camera sequence (and SLM sequence for patterns) for this plan?"""
        if not self.hardware_sequencing:
            return False
        if plan.modality.structured and len(plan.slm_images) > 1:
            return self.scope.slm_can_sequence(len(plan.slm_images))
        return True

    # --- internals -----------------------------------------------------------------
    @staticmethod
    def _settings(plan: SetPlan) -> tuple:
        return (
            plan.modality,
            plan.line,
            plan.power_mw,
            plan.activation,
            plan.exposure_ms,
            tuple(map(id, plan.slm_images)),
            plan.position,
            plan.x_um,
            plan.y_um,
            plan.z_um,
        )

    def _batches(self, plans: Iterable[SetPlan]) -> Iterator[list[SetPlan]]:
        """Group consecutive sets with the same settings and no wait between them.

        A batch runs as one hardware sequence (the SLM cycles its uploaded images), so
        back-to-back sets cost no per-set start/stop overhead.
        """
        batch: list[SetPlan] = []
        for plan in plans:
            if batch and (
                not self.uses_hardware_sequencing(plan)
                or self._settings(plan) != self._settings(batch[-1])
                or plan.min_start_s > batch[-1].min_start_s
                or len(batch) >= MAX_BATCH_SETS
            ):
                yield batch
                batch = []
            batch.append(plan)
            if plan.ends_batch:  # do not pull the next plan before this one has run
                yield batch
                batch = []
        if batch:
            yield batch

    @property
    def t0(self) -> float:
        """perf_counter() at the start of the engine's first run (the origin of time_s)."""
        return self._t0 if self._t0 is not None else time.perf_counter()

    def _wait_until(self, start_s: float, stop: threading.Event) -> None:
        delay = start_s - (time.perf_counter() - self.t0)
        if delay > 0:
            stop.wait(delay)

    @staticmethod
    def _set_dose(plan: SetPlan) -> float:
        return plan.total_power_mw * plan.exposure_ms * plan.n_frames / 1000.0

    def _within_budget(self, batch: list[SetPlan]) -> list[SetPlan]:
        """The leading sets of the batch that fit the per-sample dose budget."""
        if self.dose_budget_mj is None:
            return batch
        spent = self.stats.dose_mj.get(batch[0].sample_key, 0.0)
        per_set = self._set_dose(batch[0])
        if per_set <= 0:
            return batch
        return batch[: max(0, int((self.dose_budget_mj - spent + 1e-12) // per_set))]

    def _raise_budget(self, plan: SetPlan) -> None:
        spent = self.stats.dose_mj.get(plan.sample_key, 0.0)
        self.stats.stopped_by = "dose budget"
        raise DoseBudgetExceeded(
            f"light-dose budget of {self.dose_budget_mj:g} mJ for position {plan.position} "
            f"would be exceeded ({spent:.3g} mJ used, next set needs "
            f"{self._set_dose(plan):.3g} mJ): acquisition stopped"
        )

    def _prepare(self, plan: SetPlan) -> None:
        scope, core = self.scope, self.core
        xy = (plan.x_um, plan.y_um)
        if None not in xy and scope.roles.xy_stage and tuple(core.getXYPosition()) != xy:
            core.setXYPosition(*xy)
        if plan.z_um is not None and scope.roles.z_stage:
            core.setPosition(plan.z_um)
        if core.getExposure() != plan.exposure_ms:
            scope.set_exposure(plan.exposure_ms)
        lit = plan.lines
        for line in scope.profile.laser_lines:
            if line not in lit:
                scope.laser_off(line)
        for line, mw in lit.items():
            scope.set_power(line, mw)
            scope.set_gated(line, True)

    def _run_batch(self, batch: list[SetPlan], stop: threading.Event) -> None:
        plan = batch[0]
        self._prepare(plan)
        n_frames = plan.n_frames * len(batch)
        source = (
            self._sequenced_frames(plan, n_frames, stop)
            if self.uses_hardware_sequencing(plan)
            else self._software_frames(plan, n_frames, stop)
        )
        dest: np.ndarray | None = None  # the set being filled (sink slot or a new array)
        metas: list[dict[str, Any]] = []
        current = 0
        try:
            for image, core_meta in source:
                set_plan = batch[current]
                if dest is None:
                    dest = self._destination(set_plan, image)
                k = len(metas)
                np.copyto(dest[k], image)  # out of the core's buffer, which it reuses
                meta = self._stamp(set_plan, k, core_meta)
                self.stats.frames_acquired += 1
                metas.append(meta)
                self.events.frame_ready.emit(FrameRecord(dest[k], meta))
                if len(metas) == set_plan.n_frames:
                    self._account(set_plan, len(metas))
                    self.stats.sets_completed += 1
                    frames, dest = dest, None
                    self.events.set_complete.emit(set_plan, frames, metas)
                    metas = []
                    current += 1
                    if self._stop_at_set.is_set():
                        break
        finally:
            source.close()  # camera sequence stopped, laser off, now rather than at GC
            if dest is not None:  # an incomplete set (stopped, error, camera ended early)
                self._account(batch[current], len(metas))
                self.stats.frames_dropped += len(metas)
                if self.sink is not None:
                    self.sink.abandon(dest)

    def _destination(self, plan: SetPlan, image: np.ndarray) -> np.ndarray:
        """Where the frames of the next set go: a sink slot, or a new (n, H, W) array."""
        if self.sink is not None:
            return self.sink.claim(plan)
        return np.empty((plan.n_frames, *np.shape(image)), np.asarray(image).dtype)

    def _account(self, plan: SetPlan, n_frames: int) -> None:
        dose = plan.total_power_mw * plan.exposure_ms * n_frames / 1000.0
        self.stats.dose_mj[plan.sample_key] = self.stats.dose_mj.get(plan.sample_key, 0.0) + dose

    def _stamp(self, plan: SetPlan, k: int, core_meta: Any) -> dict[str, Any]:
        modality = plan.modality
        a, p = modality.patterns[k] if modality.structured else (0, k % modality.n_phases)
        meta: dict[str, Any] = {
            "frame": self.stats.frames_acquired,
            "event": plan.index,
            "t": plan.t,
            "a": a,
            "p": p,
            "k": k,
            "position": plan.position,
            "c": plan.channel_index,
            "time_s": time.perf_counter() - self.t0,
            "exposure_ms": plan.exposure_ms,
            "slm_pattern": k % len(plan.slm_images) if modality.structured else -1,
            "z_um": plan.z_um if plan.z_um is not None else self._z(),
            "x_um": plan.x_um if plan.x_um is not None else 0.0,
            "y_um": plan.y_um if plan.y_um is not None else 0.0,
        }
        lit = plan.lines
        for line in self.scope.profile.laser_lines:
            meta[f"power_mw_{line}"] = lit.get(line, 0.0)
        if core_meta is not None:
            for key, column in (
                ("ElapsedTime-ms", "camera_time_ms"),
                ("SimFrameCRC", "camera_crc"),
            ):
                try:
                    meta[column] = float(core_meta[key])
                except (KeyError, TypeError, ValueError):
                    pass
        # end of the frame's exposure (last row, rolling readout done), on the engine's clock:
        # the core's elapsed-time stamp of the camera frame, from the sequence start recorded
        # just before it was started (so never late); else the frame stamp (software timing)
        camera_ms = meta.get("camera_time_ms")
        meta["exposure_end_s"] = (
            self._sequence_t0 + camera_ms / 1000.0 if camera_ms is not None else meta["time_s"]
        )
        return meta

    def _z(self) -> float:
        return float(self.core.getPosition()) if self.scope.roles.z_stage else 0.0

    def _lasers(self, plan: SetPlan, on: bool) -> None:
        """Every line of ``plan`` on (activation first) or off (excitation first)."""
        lines = [*dict(plan.activation), plan.line]
        for line in lines if on else lines[::-1]:
            (self.scope.laser_on if on else self.scope.laser_off)(line)

    def _sequenced_frames(
        self, plan: SetPlan, n_frames: int, stop: threading.Event
    ) -> Generator[tuple[np.ndarray, Any], None, None]:
        """SLM image sequence + camera sequence acquisition; laser gated by the exposure."""
        scope, core = self.scope, self.core
        structured = plan.modality.structured and len(plan.slm_images) > 1
        if structured:
            loaded = self._loaded_sequence
            if (
                loaded is None
                or len(loaded) != len(plan.slm_images)
                or any(a is not b for a, b in zip(loaded, plan.slm_images, strict=True))
            ):
                self._loaded_sequence = None
                core.loadSLMSequence(scope.roles.slm, list(plan.slm_images))
                self._loaded_sequence = tuple(plan.slm_images)
            core.startSLMSequence(scope.roles.slm)
        elif plan.slm_images and scope.has_slm:
            scope.show_slm(plan.slm_images[0])
        camera_faults.watch()
        faults = camera_faults.mark()
        self._lasers(plan, True)
        self._sequence_t0 = time.perf_counter() - self.t0
        core.startSequenceAcquisition(n_frames, 0.0, True)
        poll_s = min(max(plan.exposure_ms / 4000.0, POLL_MIN_S), POLL_MAX_S)
        popped = 0
        try:
            while popped < n_frames and not stop.is_set():
                if core.getRemainingImageCount() > 0:
                    image, meta = core.popNextImageAndMD()
                    popped += 1
                    yield image, meta  # the consumer copies it out before the next pop
                elif not core.isSequenceRunning():
                    if core.getRemainingImageCount() == 0:
                        break
                else:
                    time.sleep(poll_s)
            if popped < n_frames and not stop.is_set():  # the camera gave up: never success
                why = "; ".join(camera_faults.errors_since(faults)) or "no reason given"
                raise CameraError(f"camera stopped after {popped} of {n_frames} frames: {why}")
        finally:
            if core.isSequenceRunning():
                core.stopSequenceAcquisition()
            self._lasers(plan, False)
            if structured:
                scope.stop_slm_sequence()

    def _software_frames(
        self, plan: SetPlan, n_frames: int, stop: threading.Event
    ) -> Generator[tuple[np.ndarray, Any], None, None]:
        """Show each SLM image, snap, repeat: software timing."""
        scope, core = self.scope, self.core
        for k in range(n_frames):
            if stop.is_set():
                return
            if plan.slm_images and scope.has_slm:
                scope.show_slm(plan.slm_images[k % len(plan.slm_images)])
            self._lasers(plan, True)
            try:
                core.snapImage()
            finally:
                self._lasers(plan, False)
            yield core.getImage(), None
