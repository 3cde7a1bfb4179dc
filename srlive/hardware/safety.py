"""The laser interlock and safe stops: lights off on every exit path.

:func:`interlock` wraps every acquisition: on normal end, exception, Ctrl-C or SIGTERM all
lasers go off and the SLM is blanked before the exception (if any) propagates.
:func:`graceful_stop` turns the first Ctrl-C / SIGTERM into a stop at the next frame.
(Limits are checked where settings are requested: :class:`srlive.errors.SafetyError`.)
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from srlive.hardware.microscope import Microscope

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM was received; handled like Ctrl-C so every exit path is the same."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"received signal {signum}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` (main thread only) while the block runs.

    A SIGTERM handler that is already installed (e.g. :func:`graceful_stop`) is kept.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(
        signal.SIGTERM
    ) not in (signal.SIG_DFL, None):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def graceful_stop(stop: threading.Event) -> Iterator[threading.Event]:
    """Ctrl-C or SIGTERM ask ``stop`` to end the run at the next frame; a second one forces.

    Stopping at a frame boundary lets the engine finish the frame in hand, switch the lasers
    off and close the store with everything it acquired (main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():
            raise Terminated(f"received signal {signum} twice")
        log.warning("signal %d: stopping after the current frame (again to force)", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def interlock(microscope: Microscope) -> Iterator[Microscope]:
    """Lasers off and SLM blank on every exit path of the block."""
    try:
        with terminate_as_interrupt():
            yield microscope
    finally:
        try:
            microscope.make_safe()
        except Exception:  # pragma: no cover - last line of defence; never mask the cause
            log.exception("interlock: could not make the microscope safe")
