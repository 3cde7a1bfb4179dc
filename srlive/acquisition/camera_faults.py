"""Failures of camera sequence threads, caught and reported by the engine that started them.

pymmcore-plus runs a Python camera's sequence on its own thread; an exception there ends the
thread through :func:`threading.excepthook` (a traceback on stderr) while the core only sees
the sequence stop. :func:`watch` installs a hook that records such failures instead (the
traceback goes to the debug log), so the engine can stop the run and say why in one line.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["errors_since", "mark", "watch"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_errors: list[str] = []
_installed = False
SEQUENCE_THREAD = "AcquisitionThread"  # pymmcore-plus' sequence thread class


def watch() -> None:
    """Install the hook once (other threads' exceptions go to the previous hook)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            if type(args.thread).__name__ != SEQUENCE_THREAD:
                previous(args)
                return
            cause = args.exc_value.__cause__ if args.exc_value is not None else None
            text = f"{args.exc_value}" + (f" ({type(cause).__name__})" if cause else "")
            with _lock:
                _errors.append(text)
            if args.exc_value is not None:
                log.debug("camera sequence thread failed", exc_info=args.exc_value)

        threading.excepthook = hook
        _installed = True


def mark() -> int:
    """A position in the record (call before starting a sequence)."""
    with _lock:
        return len(_errors)


def errors_since(position: int) -> list[str]:
    """Failures recorded after ``position``."""
    with _lock:
        return list(_errors[position:])
