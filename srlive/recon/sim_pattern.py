"""A SIM pattern as data: fringe wavevectors, phases, modulation and a verdict per angle, and
its row in a store's SR table (estimated by :mod:`srlive.recon.sim_params`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Source = Literal["estimated", "nominal", "previous", "none"]


@dataclass(frozen=True)
class SIMParameters:
    """Fringe wavevectors (cycles/nm), per-frame phases (rad), modulation and verdict per angle.

    ``source[a]`` says where angle a's wavevector came from: ``estimated`` (found in this
    data, significance above threshold), ``nominal``/``previous`` (not found; a fallback was
    used and the phases measured at it) or ``none`` (not found, no fallback: the angle gives
    widefield information only and its modulation is 0).
    """

    k: tuple[tuple[float, float], ...]
    phases: np.ndarray
    modulation: np.ndarray
    significance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    source: tuple[Source, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.k)
        if len(self.significance) != n:
            object.__setattr__(self, "significance", np.full(n, np.inf))
        if len(self.source) != n:
            object.__setattr__(self, "source", ("estimated",) * n)

    @property
    def n_angles(self) -> int:
        return len(self.k)

    @property
    def found(self) -> np.ndarray:
        return np.array([s == "estimated" for s in self.source])

    @property
    def period_nm(self) -> np.ndarray:
        return np.array([1.0 / np.hypot(ky, kx) if (ky or kx) else np.nan for ky, kx in self.k])

    @property
    def angles_deg(self) -> np.ndarray:
        return np.array([np.degrees(np.arctan2(ky, kx)) % 180.0 for ky, kx in self.k])

    def with_phases(self, phases: np.ndarray, modulation: np.ndarray) -> SIMParameters:
        return SIMParameters(
            self.k,
            np.asarray(phases, float),
            np.asarray(modulation, float),
            self.significance,
            self.source,
        )

    def report(self) -> list[dict[str, Any]]:
        """One JSON-ready entry per angle: angle, period, modulation, found, phases."""
        return [
            {
                "angle_deg": round(float(self.angles_deg[a]), 3) % 180.0,
                "period_nm": round(float(self.period_nm[a]), 3),
                "modulation": round(float(self.modulation[a]), 3),
                "found": bool(self.found[a]),
                "significance": round(float(self.significance[a]), 1),
                "source": self.source[a],
                "phases_deg": [round(float(np.degrees(p)) % 360.0, 1) for p in self.phases[a]],
            }
            for a in range(self.n_angles)
        ]

    def summary(self) -> str:
        """A short status line: one entry per angle."""
        parts = []
        for a in range(self.n_angles):
            if self.source[a] == "none":
                parts.append(f"a{a}: not found")
                continue
            tag = "" if self.found[a] else f" ({self.source[a]}, not found)"
            parts.append(
                f"a{a}: {round(self.angles_deg[a], 1) % 180:.1f}° {self.period_nm[a]:.1f} nm "
                f"m={self.modulation[a]:.2f}{tag}"
            )
        return "; ".join(parts)


PATTERN_FIELDS = ("period_nm", "angle_deg", "modulation", "found", "significance")


def pattern_columns(n_angles: int, n_phases: int) -> tuple[str, ...]:
    """Per-set table columns that hold the estimated pattern (one group per angle)."""
    cols: list[str] = []
    for a in range(n_angles):
        cols += [f"pattern_a{a}_{name}" for name in PATTERN_FIELDS]
        cols += [f"pattern_a{a}_phase{p}_deg" for p in range(n_phases)]
    return tuple(cols)


def pattern_row(params: SIMParameters) -> dict[str, float]:
    """The values of :func:`pattern_columns` for one set (``found`` as 1.0 / 0.0)."""
    row: dict[str, float] = {}
    for a, entry in enumerate(params.report()):
        for name in PATTERN_FIELDS:
            row[f"pattern_a{a}_{name}"] = float(entry[name])
        for p, phase in enumerate(entry["phases_deg"]):
            row[f"pattern_a{a}_phase{p}_deg"] = float(phase)
    return row
