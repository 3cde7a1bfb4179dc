"""A live session: acquire sets with the current settings until stopped; change them live.

:class:`LiveSession` runs the engine on its own thread, feeding the streaming pipeline
(:mod:`srlive.pipeline`). Settings (exposure, laser line and power, modality) are checked
against the profile's limits when they are requested (a refused value raises
:class:`~srlive.safety.SafetyError` at once) and applied through the :class:`Microscope`
role object between sets: immediately when idle, at the next set boundary while running.
``stop()`` ends acquisition when the set in progress completes, ``abort()`` at the next frame;
the engine leaves lasers off and the SLM blank every time it returns, and :meth:`close`
makes the microscope safe again whatever happened.

Each modality is its own store series (the layout differs): the first modality's series is
the store itself, later ones are sub-series ``<store>/<modality>``.

An optional optimizer (``propose() -> dict | None``, ``observe(metrics)``) is driven on its
own thread: it observes every set's metrics, and while enabled its proposals are applied
like a user's changes (and refused the same way when outside the limits).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from psygnal import Signal, SignalGroup

from srlive.acquisition.engine import MAX_BATCH_SETS, Engine, SetPlan
from srlive.acquisition.modalities import Modality, get_modality, slm_images
from srlive.acquisition.writer import AVAILABLE_RECONSTRUCTIONS, SeriesWriter
from srlive.hardware.microscope import Microscope
from srlive.optimize.control import noise_model
from srlive.pipeline.cpus import lower_current_thread_priority, pin_current_thread
from srlive.pipeline.stream import Pipeline, SRResult
from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.safety import SafetyError

log = logging.getLogger(__name__)

LIVE_MODALITIES = ("widefield", "sim9", "sim3")
FIRST_SERIES = "run"
RING_BUDGET_BYTES = 256 * 2**20
DECISIONS_PERSIST_S = 2.0


class Optimizer(Protocol):
    """What the session needs from a parameter optimizer (see ``srlive.optimize``)."""

    def observe(self, metrics: dict[str, Any]) -> None: ...

    def propose(self) -> dict[str, Any] | None: ...


@dataclass
class LiveSettings:
    """The settings the next set is acquired with."""

    modality: str
    line: int
    exposure_ms: float
    power_mw: dict[int, float] = field(default_factory=dict)

    @property
    def power(self) -> float:
        return self.power_mw[self.line]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SessionEvents(SignalGroup):
    """Signals of a live session (emitted from its threads)."""

    state = Signal(str)  # "idle" | "running" | "stopping"
    settings = Signal(object)  # LiveSettings.to_dict() after a change is applied
    status = Signal(str, bool)  # message, is_error (device / sequencing errors, notes)
    result = Signal(object)  # SRResult
    metrics = Signal(object)  # dict per set: t, signal, surviving_fraction, bleaching, snr, ...
    decision = Signal(object)  # optimizer decision: t, power_mw, exposure_ms, modality, reason
    stored = Signal(object)  # {"series", "t", "frames"} after a raw set is stored


class LiveSession:
    """Acquires, reconstructs, stores and publishes sets until stopped (thread-safe API)."""

    def __init__(
        self,
        scope: Microscope,
        settings: LiveSettings,
        out: str | Path,
        *,
        overwrite: bool = False,
        run_info: dict[str, Any] | None = None,
        optimizer: Optimizer | None = None,
        threads: int | None = None,
        slots: int | None = None,
        device: str = "auto",
        keep_raw_sum: bool = False,
        hardware_sequencing: bool = True,
        reconstructions: dict[str, str | None] | None = None,
        inference: str = "process",
        pin_cpus: bool = False,
        acquisition_nice: int = 0,
        fluctuation: FluctuationSettings | None = None,
    ) -> None:
        self.scope = scope
        self.fluctuation = fluctuation  # window, step and method parameters (fluctuation)
        self.reconstructions = dict(reconstructions or {})  # modality -> method (overrides)
        self.acquisition_nice = acquisition_nice  # > 0: the session thread and camera yield
        self.profile = scope.profile
        self.out = Path(out)
        self._check(settings)
        self.settings = replace(settings, power_mw=dict(settings.power_mw))
        self.first_modality = settings.modality
        self.writer = SeriesWriter(
            self.profile,
            scope.frame_shape,
            scope.camera_noise,
            {**(run_info or {}), "live": True},
            path_for=self._series_path,
            overwrite=overwrite,
            device=device,
            fluctuation=fluctuation or FluctuationSettings(),  # live: rolling windows
        )
        max_frames = max(self._modality(m).frames for m in {*LIVE_MODALITIES, settings.modality})
        frame_bytes = 2 * scope.frame_shape[0] * scope.frame_shape[1]
        if slots is None:
            slots = int(np.clip(RING_BUDGET_BYTES // (frame_bytes * max_frames), 3, 12))
            if settings.modality == "fluctuation":  # a window's sets stay held, 4 more move
                slots = max(slots, (fluctuation or FluctuationSettings()).sets_per_window + 4)
        self.engine = Engine(scope, hardware_sequencing=hardware_sequencing)
        self.pipeline = Pipeline(
            self.writer,
            scope.frame_shape,
            max_frames,
            clock_origin=lambda: self.engine.t0,
            slots=slots,
            threads=threads,
            keep_raw_sum=keep_raw_sum,
            inference=inference,
            pin_cpus=pin_cpus,
            noise=noise_model(scope),
        )
        self.engine.sink = self.pipeline
        self.engine.events.set_complete.connect(self._on_set_complete)
        self.events = SessionEvents()
        self.pipeline.events.result.connect(self.events.result.emit)
        self.pipeline.events.metrics.connect(self._on_metrics)
        self.pipeline.events.stored.connect(self.events.stored.emit)
        self.pipeline.events.error.connect(lambda msg: self.events.status.emit(msg, True))
        self.pipeline.events.write_failed.connect(self._on_write_failed)
        self._images: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._lock = threading.RLock()
        self._pending: list[tuple[str, Any]] = []
        self._loop_thread: threading.Thread | None = None
        self._at_set = threading.Event()  # end the engine run at the next set boundary
        self._abort = threading.Event()  # end it at the next frame
        self._stop_requested = False
        self.state = "idle"
        self.runs = 0
        self.interrupted = False
        self.error: str | None = None
        self.last_run_sets = 0
        self._closed = False
        self.optimizer = optimizer
        self.optimizer_enabled = False
        self.decisions: list[dict[str, Any]] = []  # applied optimizer decisions
        self._opt = _OptimizerDriver(self) if optimizer is not None else None
        # the devices show the session's settings from the start (lasers stay off)
        try:
            scope.set_exposure(self.settings.exposure_ms)
            for line, mw in self.settings.power_mw.items():
                scope.set_power(line, mw)
        except BaseException:  # a device refused: free the pipeline's threads and memory
            if self._opt is not None:
                self._opt.stop()
            self.pipeline.close(drain=False)
            raise

    # --- settings ---------------------------------------------------------------------
    def _modality(self, name: str) -> Modality:
        """The modality ``name``; a fluctuation set is one step of the rolling window."""
        if name == "fluctuation":
            return get_modality(name, frames=(self.fluctuation or FluctuationSettings()).step)
        return get_modality(name)

    def _check(self, settings: LiveSettings) -> None:
        get_modality(settings.modality)
        self._check_modality(settings.modality)
        self.profile.check_exposure(settings.exposure_ms)
        if settings.line not in self.profile.laser_lines:
            raise SafetyError(f"laser line {settings.line} nm is not in the profile")
        for line, mw in settings.power_mw.items():
            self.profile.check_power(line, mw)
        if settings.line not in settings.power_mw:
            raise ValueError(f"no power given for laser line {settings.line} nm")

    def _check_modality(self, name: str) -> None:
        modality = get_modality(name)
        recon = self.reconstructions.get(name, modality.reconstruction)
        if recon and (recon.startswith("dl-") or recon.endswith(".safetensors")):
            from srlive.learn.infer import resolve_weights

            resolve_weights(recon)

    def set_exposure(self, exposure_ms: float) -> None:
        """Camera exposure (ms); SafetyError outside the profile's limits."""
        self.profile.check_exposure(exposure_ms)
        self._request("exposure_ms", float(exposure_ms))

    def set_power(self, line: int, power_mw: float) -> None:
        """Laser power of ``line`` (mW); SafetyError outside the profile's limits."""
        self.profile.check_power(int(line), float(power_mw))
        self._request("power", (int(line), float(power_mw)))

    def set_line(self, line: int) -> None:
        """The laser line that illuminates the next sets."""
        if int(line) not in self.profile.laser_lines:
            raise SafetyError(f"laser line {line} nm is not in profile {self.profile.name!r}")
        self._request("line", int(line))

    def set_modality(self, name: str) -> None:
        """widefield, sim9 or sim3 (each stored as its own series)."""
        self._check_modality(name)
        self._request("modality", name)

    def _request(self, key: str, value: Any) -> None:
        with self._lock:
            if self.state == "idle":
                self._apply(key, value)
                self.events.settings.emit(self.settings.to_dict())
            else:
                self._pending.append((key, value))
                self._at_set.set()  # apply at the next set boundary

    def _apply(self, key: str, value: Any) -> None:
        """Apply one setting through the role object (which checks the limits again)."""
        s = self.settings
        if key == "exposure_ms":
            self.scope.set_exposure(value)
            s.exposure_ms = value
        elif key == "power":
            line, mw = value
            self.scope.set_power(line, mw)
            s.power_mw[line] = mw
        elif key == "line":
            if value != s.line:
                self.scope.laser_off(s.line)
            s.power_mw.setdefault(value, 0.0)
            self.scope.set_power(value, s.power_mw[value])
            s.line = value
        elif key == "modality":
            s.modality = value
        self.pipeline.reset_windows()  # a window holds sets taken with one setting only

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            changed = False
            for key, value in pending:
                try:
                    self._apply(key, value)
                    changed = True
                except Exception as exc:  # the device refused: say so, keep going
                    self.events.status.emit(f"{key}: {exc}", True)
            if changed:
                self.events.settings.emit(self.settings.to_dict())

    # --- acquisition ------------------------------------------------------------------
    def start(self, n_sets: int | None = None) -> bool:
        """Acquire ``n_sets`` sets (None: until stopped) on the session thread.

        Returns False when a run is already going.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the session is closed")
            if self.state != "idle":
                return False
            if self.pipeline.write_error is not None:  # nothing could be stored: no light
                self.events.status.emit(f"not started: {self.pipeline.write_error}", True)
                return False
            self._stop_requested = False
            self._at_set.clear()
            self._abort.clear()
            self.state = "running"
            self.runs += 1
            self._loop_thread = threading.Thread(
                target=self._loop, args=(n_sets,), name="srlive-session", daemon=True
            )
        self.events.state.emit("running")
        self._loop_thread.start()
        return True

    def snap(self) -> bool:
        """Acquire one set, reconstruct, store and show it (when idle)."""
        return self.start(1)

    def stop(self) -> None:
        """End acquisition when the set in progress completes."""
        with self._lock:
            if self.state == "running":
                self._stop_requested = True
                self.state = "stopping"
                self._at_set.set()
                self.events.state.emit("stopping")

    def abort(self) -> None:
        """End acquisition at the next frame (Ctrl-C, window closed)."""
        self.stop()
        self._abort.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current run to end; True if it has."""
        thread = self._loop_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def sequencing(self) -> str:
        """ "hardware" or "software": how the engine will time the current settings' sets."""
        plan = self._plans(0, 1)[0]
        return "hardware" if self.engine.uses_hardware_sequencing(plan) else "software"

    @property
    def running(self) -> bool:
        return self.state != "idle"

    def _plans(self, t0: int, n: int) -> list[SetPlan]:
        s = self.settings
        modality = self._modality(s.modality)
        key = (modality.name, s.line)
        if key not in self._images:
            self._images[key] = (
                tuple(slm_images(self.profile, modality, s.line, self.scope.slm_shape))
                if self.scope.has_slm
                else ()
            )
        return [
            SetPlan(
                index=t0 + i,
                t=t0 + i,
                modality=modality,
                line=s.line,
                power_mw=s.power,
                exposure_ms=s.exposure_ms,
                slm_images=self._images[key],
                n_frames=modality.frames_per_set,
                channel=str(s.line),
            )
            for i in range(n)
        ]

    def _loop(self, n_sets: int | None) -> None:
        if self.pipeline.pin_cpus:
            pin_current_thread("acquisition")  # the camera's sequence thread inherits it
        lower_current_thread_priority(self.acquisition_nice)  # inherited the same way
        done, error = 0, None
        self.pipeline.reset_windows()  # no window spans the gap between two runs
        try:
            while n_sets is None or done < n_sets:
                if self._opt is not None:
                    self._opt.apply_latest()  # queued like a user's change
                with self._lock:  # a change requested from now on sets _at_set again
                    if self._stop_requested or self._abort.is_set():
                        break
                    self._at_set.clear()
                    self._apply_pending()
                n = MAX_BATCH_SETS if n_sets is None else min(MAX_BATCH_SETS, n_sets - done)
                before = self.engine.stats.sets_completed
                plans = self._plans(before, n)
                self._series_for(plans[0])  # store and model ready before the camera starts
                self.engine.run(plans, self._abort, self._at_set)
                done += self.engine.stats.sets_completed - before
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("acquisition stopped: %s", error)
            self.events.status.emit(f"acquisition stopped: {exc}", True)
        finally:
            self.scope.make_safe()
            with self._lock:
                self.interrupted = n_sets is not None and done < n_sets
                self.error = error or self.error
                self.last_run_sets = done
                self.state = "idle"
                self._apply_pending()
            self.events.state.emit("idle")
            if error is None:
                plural = "" if done == 1 else "s"
                self.events.status.emit(f"{done} set{plural} acquired", False)

    def _on_write_failed(self, message: str) -> None:
        """A store write failed (disk full, ...): stop lighting the sample at once."""
        with self._lock:
            self.error = self.error or message
        self.abort()  # lasers off and SLM blank when the engine returns, at the next frame

    # --- pipeline callbacks -------------------------------------------------------------
    def _series_of(self, modality: Modality) -> str:
        return FIRST_SERIES if modality.name == self.first_modality else modality.name

    def _series_path(self, name: str) -> Path:
        return self.out if name == FIRST_SERIES else self.out / name

    def _reconstruction(self, modality: Modality) -> str | None:
        if modality.name in self.reconstructions:
            return self.reconstructions[modality.name]
        recon = modality.reconstruction
        return recon if recon in AVAILABLE_RECONSTRUCTIONS else None

    def _series_for(self, plan: SetPlan) -> None:
        modality = plan.modality
        state = self.writer.series_for(
            self._series_of(modality), plan, self._reconstruction(modality)
        )
        if state.recon is not None:
            self.pipeline.ensure_inference()  # the model process starts before the camera

    def _on_set_complete(self, plan: SetPlan, frames: np.ndarray, metas: list[dict]) -> None:
        modality = plan.modality
        self.pipeline.on_set_complete(
            plan, frames, metas, self._series_of(modality), self._reconstruction(modality)
        )

    def _on_metrics(self, metrics: dict[str, Any]) -> None:
        self.events.metrics.emit(metrics)
        if self._opt is not None:
            self._opt.offer(metrics)

    def set_optimizer_enabled(self, enabled: bool) -> None:
        """Let the optimizer's proposals drive the settings (it always observes)."""
        self.optimizer_enabled = bool(enabled) and self.optimizer is not None
        state = "on" if self.optimizer_enabled else "off"
        self.events.status.emit(f"optimizer {state}", False)

    def dose_mj(self) -> float:
        """Light dose delivered to the sample so far (every acquired frame counted)."""
        return float(sum(self.engine.stats.dose_mj.values()))

    def check_decision(self, decision: dict[str, Any]) -> None:
        """Raise (SafetyError, ValueError) if a decision is outside the profile's limits."""
        if decision.get("modality"):
            if decision["modality"] not in LIVE_MODALITIES:
                raise ValueError(f"modality {decision['modality']!r} is not a live modality")
            self._check_modality(decision["modality"])
        if decision.get("exposure_ms") is not None:
            self.profile.check_exposure(float(decision["exposure_ms"]))
        if decision.get("power_mw") is not None:
            self.profile.check_power(self.settings.line, float(decision["power_mw"]))

    def apply_decision(self, decision: dict[str, Any]) -> bool:
        """Apply an optimizer decision like a user's changes; False (and a status) if refused."""
        try:
            self.check_decision(decision)
            if decision.get("modality") and decision["modality"] != self.settings.modality:
                self.set_modality(decision["modality"])
            if decision.get("exposure_ms") is not None:
                self.set_exposure(decision["exposure_ms"])
            if decision.get("power_mw") is not None:
                self.set_power(self.settings.line, decision["power_mw"])
        except Exception as exc:
            self.events.status.emit(f"optimizer decision refused: {exc}", True)
            return False
        self.decisions.append(dict(decision))
        self.events.decision.emit(dict(decision))
        return True

    def write_decisions(self) -> None:
        """The applied optimizer decisions as ``tables/optimizer`` of the first series."""
        from srlive.optimize.store import DECISIONS, write_table

        path = self._series_path(FIRST_SERIES)
        if self.decisions and (path / "zarr.json").exists():
            write_table(path, DECISIONS, list(self.decisions))

    # --- display and results ------------------------------------------------------------
    def preview(
        self, render: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The newest raw set, rendered by ``render`` (for a display's timer)."""
        return self.pipeline.preview(render)

    def mark_displayed(self, result: SRResult) -> None:
        self.pipeline.mark_displayed(result)

    def live_stats(self) -> dict[str, Any]:
        """Rates, counts and latency percentiles for a live display (any thread)."""
        st = self.pipeline.stats
        return {
            "frames": self.engine.stats.frames_acquired,
            "stored": st.raw_frames_stored,
            "sets": st.sets_in,
            "sr": st.sr_results,
            "skipped": st.sr_skipped,
            **self.pipeline.latency.live(),
        }

    # --- end ----------------------------------------------------------------------------
    def close(self, complete: bool = True) -> dict[str, Any]:
        """Stop, finish reconstruction and storage, make the microscope safe; the summary.

        The stores are marked complete only if ``complete`` (the caller's run was not cut
        short) and nothing failed: no acquisition error, no failed store write.
        """
        if not self._closed:
            self._closed = True
            self.abort()
            self.wait()
            if self._opt is not None:
                self._opt.stop()
            try:
                self.pipeline.close(drain=True)
            finally:
                self.scope.make_safe()
                self._close_stores(complete)
                try:
                    self.write_decisions()
                except Exception as exc:  # the data is safe; say what was not stored
                    self.events.status.emit(f"optimizer decisions not stored: {exc}", True)
        return self.summary()

    def _close_stores(self, complete: bool) -> None:
        ok = complete and self.error is None and self.pipeline.write_error is None
        try:
            self.writer.close(complete=ok)
        except Exception as exc:  # the stores say incomplete; the command says why
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def summary(self) -> dict[str, Any]:
        stats = self.engine.stats
        pipe = self.pipeline.summary()
        return {
            "output": str(self.out),
            "series": {
                name: {
                    "path": str(self._series_path(name)),
                    "sets": s.sets,
                    "frames": s.frames,
                    "sr_images": s.sr_images,
                    "sr_skipped": s.sr_skipped,
                }
                for name, s in self.writer.series.items()
            },
            "raw_frames_acquired": stats.frames_acquired,
            "raw_frames_stored": self.writer.frames_stored,
            "raw_frames_dropped": stats.frames_acquired - self.writer.frames_stored,
            "sr_images": self.writer.sr_images,
            "sr_skipped": self.writer.sr_skipped,
            "pipeline": pipe,
            "lasers_on_at_end": [
                ln for ln in self.profile.laser_lines if self.scope.laser_is_on(ln)
            ],
            "error": self.error,
        }


class _OptimizerDriver:
    """Runs the optimizer off the acquisition thread: observe each set, propose when on."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self._cond = threading.Condition()
        self._metrics: list[dict[str, Any]] = []
        self._decision: dict[str, Any] | None = None
        self._stopping = False
        self._persisted = -math.inf
        self.decisions = 0
        self._thread = threading.Thread(target=self._run, name="srlive-optimizer", daemon=True)
        self._thread.start()

    def offer(self, metrics: dict[str, Any]) -> None:
        with self._cond:
            self._metrics.append(metrics)
            self._cond.notify()

    def apply_latest(self) -> None:
        """Called by the session between runs of the engine."""
        with self._cond:
            decision, self._decision = self._decision, None
        if decision is not None:
            self.session.apply_decision(decision)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        optimizer = self.session.optimizer
        assert optimizer is not None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._metrics or self._stopping)
                if self._stopping:
                    return
                batch, self._metrics = self._metrics, []
            try:
                for metrics in batch:
                    optimizer.observe(metrics)
                with self._cond:
                    waiting = self._decision is not None
                if not self.session.optimizer_enabled or waiting:
                    continue  # one decision per set boundary: the last one is not applied yet
                start = time.perf_counter()
                decision = optimizer.propose()
                if decision is None:
                    continue
                decision = {"t": batch[-1].get("t"), **decision}
                decision.setdefault("reason", "")
                decision["decision_ms"] = (time.perf_counter() - start) * 1000.0
                self.decisions += 1
                try:
                    self.session.check_decision(decision)  # refused now, never queued
                except (ValueError, FileNotFoundError) as exc:
                    self.session.events.status.emit(f"optimizer decision refused: {exc}", True)
                    continue
                if self.session.running:
                    with self._cond:
                        self._decision = decision
                    self.session._at_set.set()  # applied at the next set boundary
                else:
                    self.session.apply_decision(decision)
            except Exception as exc:
                self.session.events.status.emit(f"optimizer: {exc}", True)
            self._maybe_persist()

    def _maybe_persist(self) -> None:
        """Applied decisions into the store every few seconds (a crash keeps them)."""
        now = time.perf_counter()
        if now - self._persisted < DECISIONS_PERSIST_S or not self.session.decisions:
            return
        self._persisted = now
        try:
            self.session.write_decisions()
        except Exception as exc:  # written again when the session closes
            self.session.events.status.emit(f"optimizer decisions not stored yet: {exc}", True)
