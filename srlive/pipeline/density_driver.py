"""The live density control: each localised SMLM set moves the activation power.

:class:`DensityDriver` listens to a live session's results; for each set of its series it
reads the set's localisation density (``SRResult.details``), asks
:func:`srlive.optimize.density.next_activation` for the activation power and requests it
from the session (applied at the next set boundary, through the profile's limits and the
device's, like a user's change). Every step is kept (:attr:`DensityDriver.steps`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from srlive.errors import SafetyError
from srlive.optimize.density import DensityTarget, next_activation
from srlive.pipeline.stream import SRResult

if TYPE_CHECKING:
    from srlive.pipeline.session import LiveSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DensityStep:
    """One set's density and the activation power it led to."""

    t: int
    density_per_um2: float
    power_mw: float  # requested when the set was measured
    next_mw: float  # requested for the sets after it


class DensityDriver:
    """Holds ``series``' emitter density at ``target`` through the activation line."""

    def __init__(self, session: LiveSession, target: DensityTarget, series: str = "smlm") -> None:
        line = session.profile.smlm.activation_line
        if line is None:
            raise ValueError(
                f"profile {session.profile.name!r} names no activation line (smlm.activation_line)"
            )
        self.session, self.target, self.series, self.line = session, target, series, line
        self.limit_mw = float(session.profile.limits.max_power_mw[line])
        self.steps: list[DensityStep] = []
        session.events.result.connect(self._on_result)

    def _on_result(self, result: SRResult) -> None:
        if result.series != self.series:
            return
        measured = float(result.details.get("density_per_um2", float("nan")))
        current = float(self.session.settings.power_mw.get(self.line, 0.0))
        wanted = next_activation(current, measured, self.target, self.limit_mw)
        self.steps.append(DensityStep(result.t, measured, current, wanted))
        if abs(wanted - current) < 1e-9:
            return
        try:
            self.session.set_power(self.line, wanted)
        except SafetyError as exc:  # the limits said no: keep the power, say why
            log.warning("density control: %s", exc)
            self.session.events.status.emit(f"density control: {exc}", True)

    def summary(self) -> dict[str, Any]:
        """The target, limit and every step (JSON-ready)."""
        return {
            "target_per_um2": self.target.per_um2,
            "activation_line": self.line,
            "limit_mw": self.limit_mw,
            "steps": [asdict(s) for s in self.steps],
        }
