"""A protocol's set plans with the optimizer on: each SIM series' settings decided as it goes.

The optimizer's driver (:mod:`srlive.pipeline.optimizer_driver`) observes every set of an
optimized series off the acquisition thread and delivers its decision for the next timepoint
here (:meth:`OptimizedPlans.receive`). When the engine asks for that timepoint's set, the
acquisition thread waits for the decision until a deadline: the timepoint's scheduled
start, or ``decision_timeout_s`` after the request when the protocol leaves no interval. A
late decision leaves the previous (safe, already checked) setting in place and is logged as
late. Every setting is checked against the search space (the profile's limits) before it
becomes a plan; the :class:`~srlive.hardware.microscope.Microscope` and the engine check it
again when applied.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.acquisition.plan import series_name
from srlive.errors import SafetyError
from srlive.hardware.microscope import Microscope
from srlive.optimize.advisors import SeriesAdvisor, search_space
from srlive.optimize.decision import Decision
from srlive.optimize.optimizer import Optimizer, SearchSpace
from srlive.optimize.prior import load_prior
from srlive.profiles import Profile

DecisionCallback = Callable[[Decision], None]


@dataclass
class SeriesControl:
    """One optimized series: its advisor, search space and the log of applied settings."""

    key: tuple[int, str]  # (position, channel)
    advisor: SeriesAdvisor
    space: SearchSpace
    n_timepoints: int
    applied: list[Decision] = field(default_factory=list)
    current: tuple[float, float, str] | None = None
    decisions: dict[int, Decision] = field(default_factory=dict)  # timepoint -> decision

    @property
    def name(self) -> str:
        return self.advisor.name


class OptimizedPlans:
    """The engine's plan source when the optimizer is on: one set at a time.

    Sets of optimized series are emitted with ``ends_batch`` so the engine never asks for
    the next one before the current one has run; the others pass through unchanged.
    """

    def __init__(
        self,
        plans: Iterable[SetPlan],
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
        self.by_name = {c.name: c for c in controls.values()}
        self.engine = engine
        self.profile = profile
        self.slm_shape = slm_shape
        self.decision_timeout_s = decision_timeout_s
        self.on_decision = on_decision
        self._images: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
        self._cond = threading.Condition()

    def advisor(self, series: str) -> SeriesAdvisor | None:
        """The advisor of ``series`` (None: not optimized)."""
        control = self.by_name.get(series)
        return control.advisor if control is not None else None

    def receive(self, decision: Decision) -> None:
        """A decision for a series' next timepoint (from the optimizer's thread)."""
        control = self.by_name.get(decision.series)
        if control is None or decision.t is None:
            return
        with self._cond:
            control.decisions[decision.t] = decision
            self._cond.notify_all()
        if self.on_decision:
            self.on_decision(decision)

    def _wait(self, control: SeriesControl, t: int, deadline: float) -> Decision | None:
        with self._cond:
            while t not in control.decisions:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return control.decisions[t]

    def _slm_images(self, modality: str, line: int, fallback: tuple) -> tuple[np.ndarray, ...]:
        key = (modality, line)
        if key not in self._images:
            self._images[key] = (
                tuple(slm_images(self.profile, get_modality(modality), line, self.slm_shape))
                if self.slm_shape
                else fallback
            )
        return self._images[key]

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
            record = Decision(
                plan.t,
                control.name,
                plan.power_mw,
                plan.exposure_ms,
                plan.modality.name,
                "initial: the protocol's setting",
            )
        else:
            scheduled = plan.min_start_s - self.engine.elapsed_s()
            deadline = time.perf_counter() + max(scheduled, self.decision_timeout_s)
            decision = self._wait(control, plan.t, deadline)
            if decision is None:
                record = Decision(
                    plan.t,
                    control.name,
                    reason="late: no decision by the deadline; previous setting kept",
                    late=True,
                )
            else:
                record = replace(decision, details=dict(decision.details))
                new = (decision.power_mw, decision.exposure_ms, decision.modality)
                if new[0] is not None and new[1] is not None and new[2] is not None:
                    control.current = (new[0], new[1], new[2])
        power, exposure, modality = control.current
        self._check(control, power, exposure, modality, initial=not control.applied)
        record.details.update(
            applied_power_mw=power, applied_exposure_ms=exposure, applied_modality=modality
        )
        control.applied.append(record)
        if self.on_decision and record.reason.startswith(("initial", "late")):
            self.on_decision(record)  # the driver reports the optimizer's own decisions
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

    def summary(self) -> dict[str, Any]:
        """Per series: decisions applied, late ones, errors, the slowest decision."""
        out: dict[str, Any] = {}
        for control in self.controls.values():
            times = [d.decision_ms for d in control.applied if d.decision_ms is not None]
            out[control.name] = {
                "decisions": len(control.applied),
                "late": sum(d.late for d in control.applied),
                "errors": list(control.advisor.errors),
                "decision_ms_max": round(max(times), 1) if times else None,
                "table": f"{control.name}/tables/optimizer",
            }
        return out


def build_controls(
    plans: Iterable[SetPlan],
    channels: Iterable[Any],
    protocol: Any,
    scope: Microscope,
    *,
    seed: int = 0,
) -> dict[tuple[int, str], SeriesControl]:
    """One optimizer (advisor, search space) per stage position × SIM channel of a protocol."""
    settings = protocol.srlive.optimizer
    prior = load_prior()
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
            readout_ms=scope.readout_ms,
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
        advisor = SeriesAdvisor(optimizer, name, n, scope.profile.optics.pixel_nm / 2)
        controls[(position, config)] = SeriesControl((position, config), advisor, space, n)
    return controls
