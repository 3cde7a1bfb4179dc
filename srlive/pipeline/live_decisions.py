"""The optimizer's proposals in a live session: checked, applied at set boundaries, stored.

A proposal arrives on the optimizer driver's thread. It is refused at once (a status line)
when it is outside the profile's limits; otherwise it waits for the next set boundary while
the session runs (one at a time: the driver proposes again only once it is applied) or is
applied at once when idle, through the same checked setters as a user's changes. Applied
decisions go into ``tables/optimizer`` of the series each was made for.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

from srlive.optimize.decision import Decision
from srlive.optimize.store import DECISIONS, write_table
from srlive.profiles import Profile

LIVE_MODALITIES = ("widefield", "sim9", "sim3")


class DecidedSession(Protocol):
    """What decisions need of a live session (:class:`srlive.pipeline.session.LiveSession`)."""

    profile: Profile
    settings: Any  # LiveSettings: line, modality
    events: Any  # SessionEvents: status, decision
    out: Path
    optimizer_enabled: bool

    @property
    def running(self) -> bool: ...

    def check_modality(self, name: str) -> None: ...

    def set_modality(self, name: str) -> None: ...

    def set_exposure(self, exposure_ms: float) -> None: ...

    def set_power(self, line: int, power_mw: float) -> None: ...

    def at_set_boundary(self) -> None: ...


class LiveDecisions:
    """A live session's optimizer decisions (thread-safe)."""

    def __init__(self, session: DecidedSession) -> None:
        self.session = session
        self.applied: list[Decision] = []
        self._pending: Decision | None = None
        self._lock = threading.Lock()

    def ready(self, series: str) -> bool:
        """The session wants a proposal: the optimizer is on, the last one was applied."""
        return self.session.optimizer_enabled and self._pending is None

    def check(self, decision: Decision) -> None:
        """Raise (SafetyError, ValueError) if a decision is outside the profile's limits."""
        session, profile = self.session, self.session.profile
        if decision.modality:
            if decision.modality not in LIVE_MODALITIES:
                raise ValueError(f"modality {decision.modality!r} is not a live modality")
            session.check_modality(decision.modality)
        if decision.exposure_ms is not None:
            profile.check_exposure(float(decision.exposure_ms))
        if decision.power_mw is not None:
            profile.check_power(session.settings.line, float(decision.power_mw))

    def deliver(self, decision: Decision) -> None:
        """A proposal (the optimizer's thread): refused now, or applied at the next set."""
        try:
            self.check(decision)
        except (ValueError, FileNotFoundError) as exc:
            self.session.events.status.emit(f"optimizer decision refused: {exc}", True)
            return
        if self.session.running:
            with self._lock:
                self._pending = decision
            self.session.at_set_boundary()
        else:
            self.apply(decision)

    def apply_pending(self) -> None:
        """Apply the waiting proposal (the session thread, between sets)."""
        with self._lock:
            decision, self._pending = self._pending, None
        if decision is not None:
            self.apply(decision)

    def apply(self, decision: Decision) -> bool:
        """Apply a decision like a user's changes; False (and a status) if refused."""
        session = self.session
        try:
            self.check(decision)
            if decision.modality and decision.modality != session.settings.modality:
                session.set_modality(decision.modality)
            if decision.exposure_ms is not None:
                session.set_exposure(decision.exposure_ms)
            if decision.power_mw is not None:
                session.set_power(session.settings.line, decision.power_mw)
        except Exception as exc:
            session.events.status.emit(f"optimizer decision refused: {exc}", True)
            return False
        self.applied.append(decision)
        session.events.decision.emit(decision)
        return True

    def write(self) -> None:
        """The applied decisions as ``tables/optimizer`` of the series each was made for."""
        by_series: dict[str, list[dict[str, Any]]] = {}
        for decision in list(self.applied):
            by_series.setdefault(decision.series, []).append(decision.to_record())
        for series, rows in by_series.items():
            path = self.session.out / series
            if (path / "zarr.json").exists():
                write_table(path, DECISIONS, rows)
