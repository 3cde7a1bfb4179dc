"""Running the optimizer beside the acquisition: a worker thread and lazily planned sets.

The acquisition thread only hands each complete set to a :class:`DecisionWorker` (a queue
put) and, when the engine asks for the next set, waits for that worker's decision until a
deadline: the next timepoint's scheduled start, or ``decision_timeout_s`` after the request
when the protocol leaves no interval. A late decision leaves the previous (safe, already
checked) setting in place and is logged as late. Every setting is checked against the search
space (the profile's limits) and the remaining dose budget before it becomes a plan; the
:class:`~srlive.hardware.microscope.Microscope` and the engine check them again when applied.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.hardware.microscope import Microscope
from srlive.optimize.metrics import NoiseModel, set_metrics, sr_metrics
from srlive.optimize.optimizer import Optimizer, SearchSpace
from srlive.profiles import Profile
from srlive.safety import SafetyError

log = logging.getLogger(__name__)

DecisionCallback = Callable[[dict[str, Any]], None]
DEFAULT_READ_NOISE_E = 1.6
PERSIST_INTERVAL_S = 2.0


def noise_model(scope: Microscope) -> NoiseModel:
    """The camera noise model: the profile's ``camera`` section, else camera properties."""
    cfg: Profile = scope.profile
    core, cam = scope.core, scope.roles.camera

    def prop(name: str, default: float) -> float:
        try:
            return float(core.getProperty(cam, name)) if core.hasProperty(cam, name) else default
        except (RuntimeError, ValueError):
            return default

    camera = cfg.camera
    return NoiseModel(
        offset_adu=camera.offset_adu
        if camera.offset_adu is not None
        else prop("Offset", scope.camera_offset_adu),
        e_per_adu=camera.e_per_adu if camera.e_per_adu is not None else prop("Gain", 1.0),
        read_noise_e=camera.read_noise_e
        if camera.read_noise_e is not None
        else prop("ReadNoiseE", DEFAULT_READ_NOISE_E),
        max_adu=2**camera.bit_depth - 1,
    )


def search_space(
    profile: Profile,
    line: int,
    reference_exposure_ms: float,
    modalities: Iterable[str],
    *,
    max_power_mw: float | None = None,
    max_exposure_ms: float | None = None,
    readout_ms: float = 0.0,
) -> SearchSpace:
    """The optimizer's choices for one channel, inside the profile's hard limits.

    Power spans three decades below the limit (or ``max_power_mw`` if lower); exposure one
    decade either side of the protocol's (clipped to the profile's range, and to
    ``max_exposure_ms``).
    """
    limit = profile.limits.max_power_mw[line]
    top = min(limit, max_power_mw) if max_power_mw else limit
    lo_e = max(profile.limits.min_exposure_ms, reference_exposure_ms / 10.0)
    hi_e = min(profile.limits.max_exposure_ms, reference_exposure_ms * 10.0)
    if max_exposure_ms:
        hi_e = min(hi_e, max_exposure_ms)
    return SearchSpace(
        line=line,
        min_power_mw=top / 1000.0,
        max_power_mw=top,
        min_exposure_ms=min(lo_e, hi_e),
        max_exposure_ms=hi_e,
        reference_exposure_ms=reference_exposure_ms,
        frames={m: get_modality(m).frames_per_set for m in modalities},
        readout_ms=readout_ms,
    )


@dataclass
class _Job:
    t: int
    frames: np.ndarray
    power_mw: float
    exposure_ms: float
    modality: str
    dose_before_mj: float
    remaining_budget_mj: float | None
    remaining_timepoints: int | None


class DecisionWorker:
    """Computes metrics and the next decision for one series on its own thread."""

    def __init__(
        self,
        optimizer: Optimizer,
        noise: NoiseModel,
        name: str,
        *,
        sr_pixel_nm: float = 32.5,
        on_decision: DecisionCallback | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.noise = noise
        self.name = name
        self.sr_pixel_nm = sr_pixel_nm
        self.on_decision = on_decision
        # called on this thread after a set's decision, at most every PERSIST_INTERVAL_S, so
        # decisions reach the store during the run (not only at its end)
        self.persist: Callable[[], None] | None = None
        self._persisted = -math.inf
        self.metrics: list[dict[str, Any]] = []
        self.decisions: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._sr: dict[int, tuple[np.ndarray | None, float | None]] = {}
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._cond = threading.Condition()
        self._previous_wf: np.ndarray | None = None
        self.thread = threading.Thread(
            target=self._loop, name=f"srlive-optimizer-{name}", daemon=True
        )
        self.thread.start()

    def submit(self, job: _Job) -> None:
        """Hand a complete set to the worker (called on the acquisition thread; no work)."""
        self._queue.put(job)

    def add_sr(self, t: int, sr: np.ndarray | None, confidence: float | None) -> None:
        """An SR image (and a model's confidence) of set ``t``, whenever it is ready."""
        self._sr[t] = (sr, confidence)

    def _loop(self) -> None:
        try:
            self.optimizer.warm_up()
        except Exception as exc:  # the first decision will show the same error
            self.errors.append(f"warm-up: {exc}")
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._process(job)
            except Exception as exc:  # a failed decision must never stop the acquisition
                log.exception("optimizer %s: decision after set %d failed", self.name, job.t)
                self.errors.append(f"t={job.t}: {exc}")
                with self._cond:
                    self._cond.notify_all()
            self._maybe_persist()

    def _maybe_persist(self) -> None:
        now = time.perf_counter()
        if self.persist is None or now - self._persisted < PERSIST_INTERVAL_S:
            return
        self._persisted = now
        try:
            self.persist()
        except Exception:  # the tables are written again at the end of the run
            log.exception("optimizer %s: could not write its tables", self.name)

    def _process(self, job: _Job) -> None:
        start = time.perf_counter()
        metrics, wf = set_metrics(
            job.frames,
            self.noise,
            job.power_mw,
            job.exposure_ms,
            previous_widefield=self._previous_wf,
        )
        self._previous_wf = wf
        sr, confidence = self._sr.pop(job.t, (None, None))
        metrics.update(sr_metrics(sr, self.sr_pixel_nm, confidence))
        obs = self.optimizer.observe(
            job.t, job.power_mw, job.exposure_ms, job.modality, metrics, job.dose_before_mj
        )
        self.metrics.append(
            {
                "t": job.t,
                "power_mw": job.power_mw,
                "exposure_ms": job.exposure_ms,
                "modality": job.modality,
                "dose_before_mj": job.dose_before_mj,
                "quality": obs.quality,
                **metrics,
            }
        )
        remaining = job.remaining_timepoints
        if remaining is not None and remaining <= 0:
            return
        metrics_ms = (time.perf_counter() - start) * 1000.0
        decision = self.optimizer.decide(job.t + 1, job.remaining_budget_mj, remaining)
        decision["metrics_ms"] = metrics_ms
        decision["total_ms"] = (time.perf_counter() - start) * 1000.0
        decision["series"] = self.name
        decision["thread"] = threading.current_thread().name
        with self._cond:
            self.decisions[job.t + 1] = decision
            self._cond.notify_all()
        if self.on_decision:
            try:
                self.on_decision(decision)
            except Exception:
                log.exception("on_decision callback failed")

    def wait(self, t: int, deadline: float) -> dict[str, Any] | None:
        """The decision for timepoint ``t`` if it is ready by ``deadline`` (perf_counter)."""
        with self._cond:
            while t not in self.decisions:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.decisions[t]

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self.thread.join(timeout)


@dataclass
class SeriesControl:
    """One optimized series: its worker, search space and the log of applied settings."""

    key: tuple[int, str]  # (position, channel)
    worker: DecisionWorker
    space: SearchSpace
    n_timepoints: int
    applied: list[dict[str, Any]] = field(default_factory=list)
    current: tuple[float, float, str] | None = None


class OptimizedPlans:
    """The engine's plan source when the optimizer is on: one set at a time.

    Sets of optimized series are emitted with ``ends_batch`` so the engine never asks for
    the next one before the current one has run; the others pass through unchanged.
    """

    def __init__(
        self,
        plans: list[SetPlan],
        controls: dict[tuple[int, str], SeriesControl],
        engine: Engine,
        profile: Profile,
        slm_shape: tuple[int, int] | None,
        *,
        decision_timeout_s: float = 1.0,
        on_decision: DecisionCallback | None = None,
    ) -> None:
        self.plans = plans
        self.controls = controls
        self.engine = engine
        self.profile = profile
        self.slm_shape = slm_shape
        self.decision_timeout_s = decision_timeout_s
        self.on_decision = on_decision
        self._images: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._series_t: dict[tuple[int, str], int] = {}
        engine.events.set_complete.connect(self._on_set)

    def _slm_images(self, modality: str, line: int, fallback: tuple) -> tuple[np.ndarray, ...]:
        key = (modality, line)
        if key not in self._images:
            self._images[key] = (
                tuple(slm_images(self.profile, get_modality(modality), line, self.slm_shape))
                if self.slm_shape
                else fallback
            )
        return self._images[key]

    def remaining_budget(self, position: int) -> float | None:
        budget = self.engine.dose_budget_mj
        if budget is None:
            return None
        return max(0.0, budget - self.engine.stats.dose_mj.get(position, 0.0))

    def _on_set(self, plan: SetPlan, frames: np.ndarray, metas: list[dict[str, Any]]) -> None:
        control = self.controls.get((plan.position, plan.channel))
        if control is None:
            return
        set_dose = plan.power_mw * plan.exposure_ms * plan.n_frames / 1000.0
        dose_after = self.engine.stats.dose_mj.get(plan.position, 0.0)
        control.worker.submit(
            _Job(
                t=plan.t,
                frames=frames,
                power_mw=plan.power_mw,
                exposure_ms=plan.exposure_ms,
                modality=plan.modality.name,
                dose_before_mj=max(0.0, dose_after - set_dose),
                remaining_budget_mj=self.remaining_budget(plan.position),
                remaining_timepoints=control.n_timepoints - plan.t - 1,
            )
        )

    def __iter__(self) -> Iterator[SetPlan]:
        for plan in self.plans:
            control = self.controls.get((plan.position, plan.channel))
            if control is None:
                yield plan
                continue
            yield self._optimized(plan, control)

    def _optimized(self, plan: SetPlan, control: SeriesControl) -> SetPlan:
        if control.current is None:  # first set: the protocol's setting
            control.current = (plan.power_mw, plan.exposure_ms, plan.modality.name)
            record = {
                "t": plan.t,
                "series": control.worker.name,
                "power_mw": plan.power_mw,
                "exposure_ms": plan.exposure_ms,
                "modality": plan.modality.name,
                "reason": "initial: the protocol's setting",
                "late": False,
            }
        else:
            scheduled = plan.min_start_s - self.engine.elapsed_s()
            deadline = time.perf_counter() + max(scheduled, self.decision_timeout_s)
            decision = control.worker.wait(plan.t, deadline)
            if decision is None:
                record = {
                    "t": plan.t,
                    "series": control.worker.name,
                    "reason": "late: no decision by the deadline; previous setting kept",
                    "late": True,
                }
            elif decision.get("power_mw") is None:
                record = {**decision, "late": False, "reason": decision["reason"]}
            else:
                record = {**decision, "late": False}
                control.current = (
                    decision["power_mw"],
                    decision["exposure_ms"],
                    decision["modality"],
                )
        power, exposure, modality = control.current
        self._check(control, power, exposure, modality, initial=len(control.applied) == 0)
        record.update(
            {
                "applied_power_mw": power,
                "applied_exposure_ms": exposure,
                "applied_modality": modality,
            }
        )
        control.applied.append(record)
        if self.on_decision and record.get("reason", "").startswith(("initial", "late")):
            self.on_decision(record)  # the worker reports its own decisions
        mod = get_modality(modality)
        return replace(
            plan,
            power_mw=power,
            exposure_ms=exposure,
            modality=mod,
            n_frames=mod.frames_per_set,
            slm_images=self._slm_images(modality, plan.line, plan.slm_images),
            ends_batch=True,
        )

    def _check(
        self, control: SeriesControl, power: float, exposure: float, modality: str, initial: bool
    ) -> None:
        """Safety again, where settings become plans: the optimizer's space, the profile."""
        if not (math.isfinite(power) and math.isfinite(exposure)):
            raise SafetyError("optimizer produced a non-finite setting")
        if not initial and not control.space.contains(power, exposure, modality):
            raise SafetyError(
                f"optimizer setting {power:g} mW, {exposure:g} ms, {modality} is outside its "
                "search space"
            )
        self.profile.check_power(control.space.line, power)
        self.profile.check_exposure(exposure)


def build_controls(
    plans: list[SetPlan],
    channels: Iterable[Any],
    protocol: Any,
    scope: Microscope,
    *,
    on_decision: DecisionCallback | None = None,
    seed: int = 0,
) -> dict[tuple[int, str], SeriesControl]:
    """One optimizer (worker, search space) per stage position × SIM channel of a protocol."""
    from srlive.acquisition.plan import series_name
    from srlive.optimize.prior import load_prior

    settings = protocol.srlive.optimizer
    prior = load_prior()
    noise = noise_model(scope)
    readout = scope.readout_ms
    budget = protocol.srlive.dose_budget_mj or scope.profile.limits.max_dose_mj
    counts: dict[tuple[int, str], int] = {}
    for plan in plans:
        counts[(plan.position, plan.channel)] = counts.get((plan.position, plan.channel), 0) + 1
    by_config = {c.config: c for c in channels}
    controls: dict[tuple[int, str], SeriesControl] = {}
    for (position, config), n in counts.items():
        channel = by_config[config]
        base = channel.modality.name
        if base not in ("sim9", "sim3"):
            continue  # the optimizer drives SIM channels; others keep the protocol's setting
        modalities = [base]
        if settings.allow_sim3:
            modalities.append("sim3" if base == "sim9" else "sim9")
        space = search_space(
            scope.profile,
            channel.line,
            channel.exposure_ms,
            modalities,
            max_power_mw=settings.max_power_mw,
            max_exposure_ms=settings.max_exposure_ms,
            readout_ms=readout,
        )
        optimizer = Optimizer(
            space,
            prior,
            goal=settings.goal,
            target_quality=settings.target_quality,
            dose_budget_mj=budget,
            n_timepoints=n,
            seed=seed + 1000 * position + len(controls),
            fluorescence_reserve=settings.fluorescence_reserve,
            policy=settings.policy,
            steady_after=settings.steady_after,
        )
        name = series_name(position, config)
        worker = DecisionWorker(
            optimizer,
            noise,
            name,
            sr_pixel_nm=scope.profile.optics.pixel_nm / 2,
            on_decision=on_decision,
        )
        controls[(position, config)] = SeriesControl((position, config), worker, space, n)
    return controls
