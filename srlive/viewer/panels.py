"""The live window's pieces: an image panel with axes in µm and its LUT, and the status and
statistics lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg  # after qtpy, so pyqtgraph uses the binding qtpy chose
from qtpy import QtGui

RAW_MODES = ("widefield sum", "last frame")
AXIS_WIDTH = 48  # px, left axis of each panel
HIST_WIDTH = 150  # px, histogram/LUT of each panel
HIST_AXIS_WIDTH = 60  # px, room for level labels such as "65000"

# info keys shown first, with their labels; other keys follow as "key=value"
_INFO_LABELS: dict[str, str] = {
    "frame": "frame",
    "sets": "sets",
    "sr_fps": "SR fps",
    "latency_ms": "latency ms",
    "dropped": "dropped",
    "method": "method",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"{number:.1f}" if abs(number) < 1e5 else f"{number:.3g}"
    return str(value)


def format_info(info: Mapping[str, Any]) -> str:
    """One status-bar line from an ``info`` dict (``info["status"]`` goes last)."""
    parts = [f"{label} {_fmt(info[k])}" for k, label in _INFO_LABELS.items() if k in info]
    parts += [f"{k}={_fmt(v)}" for k, v in info.items() if k not in _INFO_LABELS and k != "status"]
    if info.get("status"):
        parts.append(str(info["status"]))
    return "  |  ".join(parts)


class ImagePanel:
    """A PlotItem (axes in µm) with an ImageItem and its HistogramLUTItem."""

    def __init__(self, layout: pg.GraphicsLayout, title: str, pixel_um: float, col: int) -> None:
        self.pixel_um = pixel_um
        self.plot = pg.PlotItem(title=title)
        self.plot.setLabel("bottom", "x", units="µm")
        self.plot.setLabel("left", "y", units="µm")
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.hideButtons()
        # equal axis and histogram widths give both panels the same view size, so the
        # linked views show the same µm range, not just the same zoom and centre
        self.plot.getAxis("left").setWidth(AXIS_WIDTH)
        self.plot.setMinimumWidth(150)  # not the title's width
        self.plot.setPreferredWidth(500)
        self.item = pg.ImageItem(axisOrder="row-major")
        # pixel (row i, col j) covers [j, j+1] x [i, i+1] pixel sizes, in µm
        self.item.setTransform(QtGui.QTransform.fromScale(pixel_um, pixel_um))
        self.plot.addItem(self.item)
        self.hist = pg.HistogramLUTItem(image=self.item)
        self.hist.axis.setWidth(HIST_AXIS_WIDTH)
        self.hist.setFixedWidth(HIST_WIDTH)
        layout.addItem(self.plot, row=0, col=col)
        layout.addItem(self.hist, row=0, col=col + 1)
        self.has_image = False
        self.auto_next = True

    def set_pixel_um(self, pixel_um: float) -> None:
        """Show the next images at ``pixel_um`` per pixel (an SR grid of another method)."""
        if not math.isclose(pixel_um, self.pixel_um, rel_tol=1e-9):
            self.pixel_um = pixel_um
            self.item.setTransform(QtGui.QTransform.fromScale(pixel_um, pixel_um))

    def show(self, image: np.ndarray) -> None:
        first = not self.has_image
        self.item.setImage(image, autoLevels=self.auto_next)
        self.auto_next = False
        self.has_image = True
        if first:
            self.plot.autoRange(padding=0)


def _ms(value: Any) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.0f}"


def format_stats(
    stats: Mapping[str, Any], last: tuple[float, Mapping[str, Any]] | None, now: float
) -> str:
    """Raw and SR rates (from the previous stats), latency p50/p99, skipped and stored."""
    parts = []
    if last is not None and now > last[0]:
        dt = now - last[0]
        fps = (stats.get("frames", 0) - last[1].get("frames", 0)) / dt
        sr = (stats.get("sr", 0) - last[1].get("sr", 0)) / dt
        parts.append(f"raw {fps:.1f} fps  SR {sr:.2f}/s")
    p50 = stats.get("to_display_p50_ms") or stats.get("to_result_p50_ms")
    p99 = stats.get("to_display_p99_ms") or stats.get("to_result_p99_ms")
    parts.append(f"latency p50 {_ms(p50)} ms  p99 {_ms(p99)} ms")
    parts.append(f"skipped {stats.get('skipped', 0)}")
    parts.append(f"stored {stats.get('stored', 0)}/{stats.get('frames', 0)} frames")
    return "  |  ".join(parts)
