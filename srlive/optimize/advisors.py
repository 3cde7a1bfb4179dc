"""The optimizer as the runner drives it: observe each set's metrics, propose the next setting.

An :class:`Advisor` is what :class:`srlive.pipeline.optimizer_driver.OptimizerDriver` runs
on its thread, for live runs and protocols alike:

* :class:`SessionAdvisor` (a live run, ``srlive run --optimize`` and the window's toggle):
  one :class:`~srlive.optimize.optimizer.Optimizer` per modality with a quality curve in the
  prior (sim9, sim3), proposing the next power and exposure of the modality being imaged;
  widefield sets are not optimized;
* :class:`SeriesAdvisor` (a protocol with ``optimizer.enabled``): one optimizer per stage
  position × SIM channel, deciding every next timepoint of its series from the set's metrics
  and its SR image (decorrelation resolution, a model's confidence).

Every setting lies in a :class:`~srlive.optimize.optimizer.SearchSpace` inside the profile's
hard limits; the plan source and the :class:`~srlive.hardware.microscope.Microscope` check
them again where they are applied.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from srlive.acquisition.modalities import get_modality
from srlive.optimize.decision import Decision
from srlive.optimize.optimizer import DEFAULT_TARGET_QUALITY, Optimizer, SearchSpace
from srlive.optimize.prior import Prior, load_prior
from srlive.profiles import Profile
from srlive.recon.set_metrics import SetMetrics, sr_metrics


@dataclass(frozen=True)
class SRSample:
    """A set's SR image and its confidence (learned methods), as the optimizer sees it."""

    image: np.ndarray
    confidence: float


class Advisor(Protocol):
    """What the optimizer driver needs: learn from sets, propose settings."""

    def warm_up(self) -> None: ...

    def observe(self, metrics: SetMetrics, sr: SRSample | None) -> None: ...

    def propose(self, metrics: SetMetrics) -> Decision | None: ...


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
    decade either side of the reference (clipped to the profile's range, and to
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


class SessionAdvisor:
    """A live run's optimizer: one per optimized modality, following the user's modality."""

    def __init__(
        self,
        profile: Profile,
        line: int,
        reference_exposure_ms: float,
        *,
        goal: str = "min-dose-at-quality",
        target_quality: float = DEFAULT_TARGET_QUALITY,
        dose_budget_mj: float | None = None,
        readout_ms: float = 0.0,
        prior: Prior | None = None,
        seed: int = 0,
    ) -> None:
        self.prior = prior or load_prior()
        self.modalities = [m for m in ("sim9", "sim3") if m in self.prior.curves]
        self._lock = threading.Lock()
        self.dose_budget_mj = dose_budget_mj or profile.limits.max_dose_mj
        self._optimizers: dict[str, Optimizer] = {
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

    def warm_up(self) -> None:
        """Nothing to prepare: the first decision comes after the first observed sets."""

    def observe(self, metrics: SetMetrics, sr: SRSample | None = None) -> None:
        """Learn from one set (ignored for modalities it does not optimize)."""
        optimizer = self._optimizers.get(metrics.modality)
        if optimizer is None:
            return
        with self._lock:
            optimizer.observe(
                metrics.t,
                metrics.power_mw,
                metrics.exposure_ms,
                metrics.modality,
                metrics.to_dict(),
                max(0.0, metrics.dose_before_mj),
            )

    def propose(self, metrics: SetMetrics) -> Decision | None:
        """The next power and exposure for ``metrics``' modality, or None (nothing to do)."""
        optimizer = self._optimizers.get(metrics.modality)
        if optimizer is None or not optimizer.observations:
            return None
        with self._lock:
            record = optimizer.decide(metrics.t + 1, metrics.remaining_budget_mj)
        decision = Decision.from_optimizer(record, metrics.series)
        return decision if decision.changes else None


class SeriesAdvisor:
    """A protocol series' optimizer: observes each set and decides its next timepoint."""

    def __init__(
        self, optimizer: Optimizer, name: str, n_timepoints: int, sr_pixel_nm: float
    ) -> None:
        self.optimizer = optimizer
        self.name = name
        self.n_timepoints = n_timepoints
        self.sr_pixel_nm = sr_pixel_nm
        self.metrics: list[dict[str, Any]] = []  # one row per observed set
        self.errors: list[str] = []

    def warm_up(self) -> None:
        self.optimizer.warm_up()

    def observe(self, metrics: SetMetrics, sr: SRSample | None) -> None:
        observed = metrics.to_dict()
        observed.update(
            sr_metrics(
                None if sr is None else sr.image,
                self.sr_pixel_nm,
                None if sr is None else sr.confidence,
            )
        )
        obs = self.optimizer.observe(
            metrics.t,
            metrics.power_mw,
            metrics.exposure_ms,
            metrics.modality,
            observed,
            max(0.0, metrics.dose_before_mj),
        )
        self.metrics.append({**observed, "quality": obs.quality})

    def propose(self, metrics: SetMetrics) -> Decision | None:
        remaining = self.n_timepoints - metrics.t - 1
        if remaining <= 0:
            return None
        record = self.optimizer.decide(metrics.t + 1, metrics.remaining_budget_mj, remaining)
        return Decision.from_optimizer(record, self.name)
