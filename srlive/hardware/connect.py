"""Connect to a Micro-Manager core for a profile."""

from __future__ import annotations

import atexit
import gc
import logging

from pymmcore_plus.experimental.unicore import UniMMCore

from srlive.hardware.microscope import Microscope
from srlive.profiles import Profile, ProfileError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error in configuration file"):
        return f"{lines[0]}: {lines[-1]}"
    return lines[0] if lines else type(exc).__name__


# A pymmcore core that is still alive when the interpreter finalises after its devices were
# unloaded can abort the process ("exception not rethrown"); cores sit in reference cycles
# (core ↔ MDA runner), so collect them while the interpreter is still whole.
atexit.register(gc.collect)


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


def connect(profile: Profile) -> Microscope:
    """Load the profile's config and wrap the core in role objects."""
    core = load_config(profile)
    try:
        return Microscope(core, profile)
    except Exception:
        core.unloadAllDevices()
        raise
