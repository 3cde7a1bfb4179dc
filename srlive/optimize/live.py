"""The optimizer in a live session (``srlive run`` and its window).

A :class:`LiveOptimizer` is what :class:`~srlive.acquisition.session.LiveSession` drives on
its optimizer thread: it observes every measured set's metrics (from the pipeline's
:class:`~srlive.pipeline.metrics.SignalTracker`, the same numbers the window plots) and
proposes the next power and exposure for the modality the user is imaging with. One
:class:`~srlive.optimize.optimizer.Optimizer` is kept per modality with a quality curve in
the prior (sim9, sim3); widefield sets are not optimized. The dose the sample received
comes from the engine, which accounts for every frame, not only the measured ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from srlive.optimize.optimizer import DEFAULT_TARGET_QUALITY, Optimizer
from srlive.optimize.prior import Prior, load_prior
from srlive.profiles import Profile


class LiveOptimizer:
    """Observe sets, propose settings; see the module docstring."""

    def __init__(
        self,
        profile: Profile,
        line: int,
        reference_exposure_ms: float,
        dose_mj: Callable[[], float],
        *,
        goal: str = "min-dose-at-quality",
        target_quality: float = DEFAULT_TARGET_QUALITY,
        dose_budget_mj: float | None = None,
        readout_ms: float = 0.0,
        prior: Prior | None = None,
        seed: int = 0,
    ) -> None:
        from srlive.optimize.control import search_space

        self.prior = prior or load_prior()
        self.modalities = [m for m in ("sim9", "sim3") if m in self.prior.curves]
        self._dose_mj = dose_mj
        self._lock = threading.Lock()
        self._modality: str | None = None
        self._t = -1
        self.dose_budget_mj = dose_budget_mj or profile.limits.max_dose_mj
        self._optimizers = {
            m: Optimizer(
                search_space(profile, line, reference_exposure_ms, [m], readout_ms=readout_ms),
                self.prior,
                goal=goal,
                target_quality=target_quality,
                dose_budget_mj=self.dose_budget_mj,
                seed=seed,
            )
            for m in self.modalities
        }

    def observe(self, metrics: dict[str, Any]) -> None:
        """Learn from one set's metrics (ignored for modalities it does not optimize)."""
        modality = metrics.get("modality")
        optimizer = self._optimizers.get(str(modality))
        with self._lock:
            self._modality = modality
            if optimizer is None:
                return
            self._t = int(metrics.get("t", self._t + 1))
            power, exposure = float(metrics["power_mw"]), float(metrics["exposure_ms"])
            set_dose = power * exposure * optimizer.space.frames[modality] / 1000.0
            before = max(0.0, self._dose_mj() - set_dose)
            optimizer.observe(self._t, power, exposure, modality, metrics, before)

    def propose(self) -> dict[str, Any] | None:
        """The next power and exposure for the current modality, or None (nothing to do)."""
        with self._lock:
            optimizer = self._optimizers.get(str(self._modality))
            if optimizer is None or not optimizer.observations:
                return None
            remaining = (
                None if self.dose_budget_mj is None else self.dose_budget_mj - self._dose_mj()
            )
            decision = optimizer.decide(self._t + 1, remaining)
        if decision["power_mw"] is None:
            return None
        return decision
