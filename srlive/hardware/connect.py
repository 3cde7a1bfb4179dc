"""One way in to any Micro-Manager: pymmcore-plus for a .cfg, or pycromanager's ``Core``.

* ``pymmcore-plus`` (default): the profile's ``.cfg`` is loaded into a ``UniMMCore``, so the
  simulated ``#py`` devices (and any C++ adapters of an installed Micro-Manager) load.
* ``pycromanager``: a running Micro-Manager with its ZMQ server on (Tools > Options >
  "Run server on port"): ``pycromanager.Core(port=...)``.
* ``pycromanager-headless``: pycromanager starts a pymmcore core in this process from the
  installation at ``micromanager.app_path`` and the profile's ``.cfg``.

pycromanager's cores speak snake_case; :class:`~srlive.hardware.pycro.SnakeCaseCore` gives
the engine the same camelCase API on every route.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymmcore_plus.experimental.unicore import UniMMCore

from srlive.hardware.microscope import Microscope
from srlive.hardware.pycro import SnakeCaseCore
from srlive.profiles import Profile, ProfileError

# A pymmcore core that is still alive when the interpreter finalises after its devices were
# unloaded can abort the process ("exception not rethrown"); cores sit in reference cycles
# (core ↔ MDA runner), so collect them while the interpreter is still whole.
atexit.register(gc.collect)

log = logging.getLogger(__name__)
BRIDGE_THREAD = "BridgeSocketThread"  # pycromanager's (pyjavaz's) socket thread
BRIDGE_JOIN_S = 5.0
ADAPTER_GLOB = "*mmgr_dal_*"  # Micro-Manager's device adapter libraries


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error in configuration file"):
        return f"{lines[0]}: {lines[-1]}"
    return lines[0] if lines else type(exc).__name__


def new_core() -> UniMMCore:
    """A fresh ``UniMMCore``; a missing Micro-Manager install is only needed for C++ devices.

    pymmcore-plus logs an error when it finds no Micro-Manager installation to take C++
    device adapters from; Python devices do not need one, and a .cfg that names a C++
    adapter still fails to load with a clear message, so the log is silenced here.
    """
    mm_logger = logging.getLogger("pymmcore-plus")
    level = mm_logger.level
    mm_logger.setLevel(logging.CRITICAL)
    try:
        return UniMMCore()
    finally:
        mm_logger.setLevel(level)


def load_config(profile: Profile) -> UniMMCore:
    """Load the profile's ``.cfg`` into a new pymmcore-plus ``UniMMCore``."""
    core = new_core()
    try:
        core.loadSystemConfiguration(str(profile.config_path))
    except Exception as exc:
        try:
            core.unloadAllDevices()
        except Exception:
            pass
        raise ProfileError(f"{profile.config_path}: {_first_line(exc)}") from None
    return core


def as_camel_case(core: Any) -> Any:
    """A camelCase core: pycromanager's snake_case cores are driven through their snake_case
    methods (the only ones the Java bridge has) behind a :class:`SnakeCaseCore`."""
    if isinstance(core, SnakeCaseCore):
        return core
    if hasattr(core, "get_loaded_devices"):
        return SnakeCaseCore(core)
    if hasattr(core, "getLoadedDevices"):
        return core
    raise TypeError(f"{type(core).__name__} is not a Micro-Manager core")


@contextlib.contextmanager
def _quiet_bridge_thread(port: int) -> Iterator[None]:
    """A failed pycromanager connection says so once: its socket thread's traceback is logged
    at debug level (and waited for) instead of printed after the error."""
    previous = threading.excepthook
    name = f"{BRIDGE_THREAD}_port{port}"

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.thread is not None and args.thread.name.startswith(BRIDGE_THREAD):
            log.debug("%s: %s", args.thread.name, args.exc_value)
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    except BaseException:
        for thread in threading.enumerate():
            if thread.name == name and thread is not threading.current_thread():
                thread.join(BRIDGE_JOIN_S)
        raise
    finally:
        threading.excepthook = previous


def _app_path(profile: Profile) -> str:
    """The Micro-Manager installation pycromanager-headless starts, checked to exist."""
    app_path = profile.micromanager.app_path
    field = f"{profile.source}: field 'micromanager.app_path'"
    if not app_path:
        raise ProfileError(f"{field}: missing (pycromanager-headless needs the installation)")
    path = Path(app_path).expanduser()
    if not path.is_dir() or not any(path.glob(ADAPTER_GLOB)):
        raise ProfileError(
            f"{field}: no Micro-Manager installation at {app_path} (no {ADAPTER_GLOB} adapters)"
        )
    return str(path)


def _pycromanager_core(profile: Profile) -> Any:
    settings = profile.micromanager
    try:
        import pycromanager
    except ImportError as exc:  # pragma: no cover - pycromanager is a dependency
        raise ProfileError(f"pycromanager is not installed: {exc}") from None
    app_path = _app_path(profile) if settings.backend == "pycromanager-headless" else None
    try:
        with _quiet_bridge_thread(settings.port):
            if app_path is not None:
                pycromanager.start_headless(app_path, str(profile.config_path), python_backend=True)
            return pycromanager.Core(port=settings.port)
    except Exception as exc:
        raise ProfileError(
            f"{profile.source}: cannot reach Micro-Manager through pycromanager "
            f"({settings.backend}, port {settings.port}): {_first_line(exc)}"
        ) from None


def connect(profile: Profile, core: Any | None = None) -> Microscope:
    """A :class:`Microscope` for the profile, over ``core`` or the profile's backend."""
    if core is None:
        if profile.micromanager.backend == "pymmcore-plus":
            core = load_config(profile)
        else:
            core = _pycromanager_core(profile)
    core = as_camel_case(core)
    try:
        return Microscope(core, profile)
    except Exception:
        if isinstance(core, UniMMCore):
            core.unloadAllDevices()
        raise
