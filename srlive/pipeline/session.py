"""A live session: acquire sets with the current settings until stopped; change them live.

:class:`LiveSession` is the live source of set plans for the one :class:`Runner`
(:mod:`srlive.pipeline.runner`), run on the session's own thread. Settings (exposure, laser
line and power, modality) are checked against the profile's limits when they are requested
(a refused value raises :class:`~srlive.errors.SafetyError` at once) and applied through the
:class:`Microscope` role object between sets: immediately when idle, at the next set
boundary while running. ``stop()`` ends acquisition when the set in progress completes,
``abort()`` at the next frame; the engine leaves lasers off and the SLM blank every time it
returns, and :meth:`close` makes the microscope safe again whatever happened.

Each modality is its own series of the run's store (``<out>/<modality>``: the layouts
differ). An optional advisor (:class:`~srlive.optimize.advisors.SessionAdvisor`) observes
every measured set on the optimizer driver's thread; while enabled its proposals are applied
like a user's changes (and refused the same way when outside the limits).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from srlive.acquisition.engine import MAX_BATCH_SETS, SetPlan
from srlive.acquisition.modalities import Modality, get_modality, slm_images
from srlive.errors import SafetyError
from srlive.hardware.microscope import Microscope
from srlive.optimize.advisors import Advisor
from srlive.optimize.decision import Decision
from srlive.pipeline.cpus import lower_current_thread_priority, pin_current_thread
from srlive.pipeline.live_decisions import LIVE_MODALITIES, LiveDecisions
from srlive.pipeline.optimizer_driver import OptimizerDriver
from srlive.pipeline.runner import Runner
from srlive.pipeline.store_writer import StoredSet
from srlive.pipeline.stream import Preview, SRResult
from srlive.pipeline.summary import RunSummary
from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.recon.methods import get_method
from srlive.recon.set_metrics import SetMetrics

log = logging.getLogger(__name__)


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
    settings = Signal(LiveSettings)  # a copy, after a change is applied
    status = Signal(str, bool)  # message, is_error (device / sequencing errors, notes)
    result = Signal(SRResult)
    metrics = Signal(SetMetrics)
    decision = Signal(Decision)  # an optimizer decision, applied
    stored = Signal(StoredSet)  # a raw set is stored


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
        optimizer: Advisor | None = None,
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
        smlm: Any = None,
        smlm_frames: int | None = None,
    ) -> None:
        self.scope = scope
        self.fluctuation = fluctuation  # window, step and method parameters (fluctuation)
        self.smlm_frames = smlm_frames  # frames per SMLM set (None: the modality's)
        self.reconstructions = dict(reconstructions or {})  # modality -> method (overrides)
        self.acquisition_nice = acquisition_nice  # > 0: the session thread and camera yield
        self.profile = scope.profile
        self.out = Path(out)
        self._check(settings)
        self.settings = replace(settings, power_mw=dict(settings.power_mw))
        self.first_modality = settings.modality
        max_frames = max(self._modality(m).frames for m in {*LIVE_MODALITIES, settings.modality})
        self.runner = Runner(
            scope,
            out,
            self._route,
            max_frames=max_frames,
            run_info={**(run_info or {}), "live": True},
            overwrite=overwrite,
            slots=slots,
            threads=threads,
            device=device,
            keep_raw_sum=keep_raw_sum,
            inference=inference,
            pin_cpus=pin_cpus,
            hardware_sequencing=hardware_sequencing,
            fluctuation=fluctuation or FluctuationSettings()
            if settings.modality == "fluctuation"
            else fluctuation,
            smlm=smlm,
        )
        self.events = SessionEvents()
        pipeline = self.pipeline
        pipeline.events.result.connect(self.events.result.emit)
        pipeline.events.metrics.connect(self.events.metrics.emit)
        pipeline.events.stored.connect(self.events.stored.emit)
        pipeline.events.error.connect(lambda msg: self.events.status.emit(msg, True))
        pipeline.events.write_failed.connect(self._on_write_failed)
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
        self.last_run_sets = 0
        self._closed = False
        self.optimizer = optimizer
        self.optimizer_enabled = False
        self.decisions = LiveDecisions(self)  # the optimizer's, applied like a user's changes
        if optimizer is not None:
            self.runner.drive(
                OptimizerDriver(
                    lambda series: optimizer,
                    self.decisions.deliver,
                    ready=self.decisions.ready,
                    persist=self.decisions.write,
                    on_error=lambda message: self.events.status.emit(message, True),
                )
            )
        # the devices show the session's settings from the start (lasers stay off)
        try:
            scope.set_exposure(self.settings.exposure_ms)
            for line, mw in self.settings.power_mw.items():
                scope.set_power(line, mw)
        except BaseException:  # a device refused: free the threads, memory and the store
            self.runner.close(complete=False, drain=False)
            raise

    # --- the runner's parts ---------------------------------------------------------------
    @property
    def pipeline(self) -> Any:
        return self.runner.pipeline

    @property
    def engine(self) -> Any:
        return self.runner.engine

    @property
    def writer(self) -> Any:
        return self.runner.writer

    @property
    def error(self) -> str | None:
        return self.runner.error

    # --- settings ---------------------------------------------------------------------
    def _modality(self, name: str) -> Modality:
        """The modality ``name``; a fluctuation set is one step of the rolling window."""
        if name == "fluctuation":
            return get_modality(name, frames=(self.fluctuation or FluctuationSettings()).step)
        return get_modality(name, frames=self.smlm_frames if name == "smlm" else None)

    def _check(self, settings: LiveSettings) -> None:
        get_modality(settings.modality)
        self.check_modality(settings.modality)
        self.profile.check_exposure(settings.exposure_ms)
        if settings.line not in self.profile.laser_lines:
            raise SafetyError(f"laser line {settings.line} nm is not in the profile")
        for line, mw in settings.power_mw.items():
            self.profile.check_power(line, mw)
        if settings.line not in settings.power_mw:
            raise ValueError(f"no power given for laser line {settings.line} nm")

    def check_modality(self, name: str) -> None:
        """The modality's reconstruction can take its sets and has what it needs."""
        modality = self._modality(name)
        recon = self._reconstruction(modality)
        if recon is not None:
            method = get_method(recon)
            method.picker((modality.n_angles, modality.n_phases), modality.structured)
            method.check()

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
        self.check_modality(name)
        self._request("modality", name)

    def _request(self, key: str, value: Any) -> None:
        with self._lock:
            if self.state == "idle":
                self._apply(key, value)
                self._emit_settings()
            else:
                self._pending.append((key, value))
                self._at_set.set()  # apply at the next set boundary

    def _emit_settings(self) -> None:
        self.events.settings.emit(replace(self.settings, power_mw=dict(self.settings.power_mw)))

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
                self._emit_settings()

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
            if self.runner.write_error is not None:  # nothing could be stored: no light
                self.events.status.emit(f"not started: {self.runner.write_error}", True)
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

    def at_set_boundary(self) -> None:
        """Let the engine return at the next set boundary (a change waits to be applied)."""
        self._at_set.set()

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
                activation=self._activation(modality, s),
            )
            for i in range(n)
        ]

    def _activation(self, modality: Modality, s: LiveSettings) -> tuple[tuple[int, float], ...]:
        """SMLM sets light the profile's activation line at its power (when above 0)."""
        line = self.profile.smlm.activation_line
        if modality.name != "smlm" or line is None or line == s.line:
            return ()
        power = s.power_mw.get(line, 0.0)
        return ((line, power),) if power > 0 else ()

    def _loop(self, n_sets: int | None) -> None:
        if self.pipeline.pin_cpus:
            pin_current_thread("acquisition")  # the camera's sequence thread inherits it
        lower_current_thread_priority(self.acquisition_nice)  # inherited the same way
        done, error = 0, None
        self.pipeline.reset_windows()  # no window spans the gap between two runs
        try:
            while n_sets is None or done < n_sets:
                self.decisions.apply_pending()  # queued like a user's change
                with self._lock:  # a change requested from now on sets _at_set again
                    if self._stop_requested or self._abort.is_set():
                        break
                    self._at_set.clear()
                    self._apply_pending()
                n = MAX_BATCH_SETS if n_sets is None else min(MAX_BATCH_SETS, n_sets - done)
                plans = self._plans(self.engine.stats.sets_completed, n)
                self.runner.prepare(plans[0])  # store and model ready before the camera starts
                done += self.runner.run(plans, self._abort, self._at_set)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("acquisition stopped: %s", error)
            self.events.status.emit(f"acquisition stopped: {exc}", True)
        finally:
            self.scope.make_safe()
            with self._lock:
                self.interrupted = n_sets is not None and done < n_sets
                self.runner.error = error or self.runner.error
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
            self.runner.error = self.runner.error or message
        self.abort()  # lasers off and SLM blank when the engine returns, at the next frame

    # --- series -----------------------------------------------------------------------
    def _reconstruction(self, modality: Modality) -> str | None:
        if modality.name in self.reconstructions:
            return self.reconstructions[modality.name]
        return modality.reconstruction

    def _route(self, plan: SetPlan) -> tuple[str, str | None]:
        """Each modality is a series of its own: ``<out>/<modality>``."""
        return plan.modality.name, self._reconstruction(plan.modality)

    @property
    def first_series(self) -> str:
        return self.first_modality

    # --- optimizer --------------------------------------------------------------------
    def set_optimizer_enabled(self, enabled: bool) -> None:
        """Let the optimizer's proposals drive the settings (it always observes)."""
        self.optimizer_enabled = bool(enabled) and self.optimizer is not None
        state = "on" if self.optimizer_enabled else "off"
        self.events.status.emit(f"optimizer {state}", False)

    def dose_mj(self) -> float:
        """Light dose delivered to the sample so far (every acquired frame counted)."""
        return self.runner.dose_mj()

    # --- display and results ------------------------------------------------------------
    def preview(self, render: Callable[[np.ndarray], np.ndarray]) -> Preview | None:
        """The newest raw set, rendered by ``render`` into its own array (a display's timer)."""
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
    def close(self, complete: bool = True, drain: bool = True) -> RunSummary:
        """Stop, finish reconstruction and storage, make the microscope safe; the summary.

        The stores are marked complete only if ``complete`` (the caller's run was not cut
        short) and nothing failed: no acquisition error, no failed store write.
        """
        if not self._closed:
            self._closed = True
            self.abort()
            self.wait()
            self.runner.close(complete, drain=drain, finish=self._store_decisions)
        return self.summary()

    def _store_decisions(self) -> None:
        try:
            self.decisions.write()
        except Exception as exc:  # the data is safe; say what was not stored
            self.events.status.emit(f"optimizer decisions not stored: {exc}", True)

    def summary(self) -> RunSummary:
        return self.runner.summary("live", modality=self.first_modality)
