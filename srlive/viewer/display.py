"""Is there a display to open a window on? (No Qt import: headless runs need no binding.)"""

from __future__ import annotations

import os
import sys

HEADLESS_QPA = ("offscreen", "minimal")


def headless_qpa() -> bool:
    """Qt was told to render without a screen (``QT_QPA_PLATFORM=offscreen``/``minimal``)."""
    return os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].lower() in HEADLESS_QPA


def display_available() -> bool:
    """True if a GUI window can be shown on this machine."""
    if headless_qpa():
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def offscreen_without_display() -> None:
    """Render offscreen where no display exists (Qt would abort the whole process there)."""
    if not display_available() and not headless_qpa():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
