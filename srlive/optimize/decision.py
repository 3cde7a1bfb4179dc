"""An optimizer's decision: the settings for a series' next set, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CORE = ("t", "power_mw", "exposure_ms", "modality", "reason", "decision_ms")


@dataclass
class Decision:
    """The next set's power, exposure and modality for one series (None: keep the setting).

    ``details`` holds what the optimizer knew (its fits, predictions, the set it observed);
    :meth:`to_record` is the row of the series' ``tables/optimizer``.
    """

    t: int | None  # the timepoint it is for
    series: str
    power_mw: float | None = None
    exposure_ms: float | None = None
    modality: str | None = None
    reason: str = ""
    decision_ms: float | None = None  # the optimizer's own time for it
    late: bool = False  # a protocol's deadline passed first: the previous setting was kept
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        """It sets a power (a decision without one keeps the setting)."""
        return self.power_mw is not None

    @classmethod
    def from_optimizer(cls, record: dict[str, Any], series: str) -> Decision:
        """From :meth:`srlive.optimize.optimizer.Optimizer.decide`'s JSON-ready record."""
        details = {k: v for k, v in record.items() if k not in CORE and k != "series"}
        return cls(
            t=record.get("t"),
            series=series,
            power_mw=record.get("power_mw"),
            exposure_ms=record.get("exposure_ms"),
            modality=record.get("modality"),
            reason=record.get("reason") or "",
            decision_ms=record.get("decision_ms"),
            details=details,
        )

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready row: the core fields, then the details."""
        return {
            "t": self.t,
            "series": self.series,
            "power_mw": self.power_mw,
            "exposure_ms": self.exposure_ms,
            "modality": self.modality,
            "reason": self.reason,
            "decision_ms": self.decision_ms,
            "late": self.late,
            **self.details,
        }
