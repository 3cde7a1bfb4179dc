"""Connect a :class:`LiveViewer` with controls to a :class:`LiveSession`.

Viewer → session: Start/Stop/Snap and setting changes (refused values put the error in the
status line and the controls back to the settings in effect). Session → viewer: SR results,
metrics, optimizer decisions, status lines, state and applied settings, all through the
viewer's thread-safe entry points; the viewer pulls the newest raw set and the live figures
on its own timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from srlive.pipeline.session import LiveSession
    from srlive.viewer.window import LiveViewer


def _guarded(viewer: LiveViewer, session: LiveSession, setter: Callable[..., None]) -> Callable:
    def call(*args: Any) -> None:
        try:
            setter(*args)
        except (ValueError, FileNotFoundError) as exc:  # SafetyError is a ValueError
            viewer.show_status(str(exc), True)
            viewer.set_settings(replace(session.settings, power_mw=dict(session.settings.power_mw)))

    return call


def attach_session(viewer: LiveViewer, session: LiveSession) -> None:
    """Wire ``viewer`` and ``session`` both ways (from any thread)."""
    viewer.start_requested.connect(lambda: session.start(None))
    viewer.stop_requested.connect(session.stop)
    viewer.snap_requested.connect(session.snap)
    viewer.modality_changed.connect(_guarded(viewer, session, session.set_modality))
    viewer.line_changed.connect(_guarded(viewer, session, session.set_line))
    viewer.exposure_changed.connect(_guarded(viewer, session, session.set_exposure))
    viewer.power_changed.connect(_guarded(viewer, session, session.set_power))
    viewer.optimizer_toggled.connect(session.set_optimizer_enabled)
    events = session.events
    events.result.connect(viewer.submit_result)
    events.metrics.connect(viewer.show_metrics)
    events.decision.connect(viewer.show_decision)
    events.status.connect(viewer.show_status)
    events.state.connect(viewer.set_state)
    events.settings.connect(viewer.set_settings)
    viewer.set_raw_source(session.preview)
    viewer.set_stats_source(session.live_stats)
    viewer.set_display_callback(session.mark_displayed)
    viewer.set_settings(replace(session.settings, power_mw=dict(session.settings.power_mw)))
    viewer.set_state(session.state)
    viewer.set_optimizer_available(session.optimizer is not None)
