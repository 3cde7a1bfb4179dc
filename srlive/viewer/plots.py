"""The optimizer panel: on/off, its choices over time, and signal / bleaching over time.

Each plot has two y axes (left and right) sharing the time axis, in seconds since the
window opened. Points are kept in bounded buffers; the panel redraws only when told to (the
viewer's display timer), however often data arrive.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from qtpy import QtWidgets
from qtpy.QtCore import Signal

if TYPE_CHECKING:
    from srlive.optimize.decision import Decision
    from srlive.recon.set_metrics import SetMetrics

MAX_POINTS = 5000

COLORS = {"left": "#50aaff", "right": "#ffa03c"}


class TwinPlot(pg.PlotWidget):
    """A time plot with one curve on the left axis and one on the right axis."""

    def __init__(self, title: str, left: str, right: str, left_units: str, right_units: str):
        super().__init__(title=title)
        self.setMinimumHeight(140)
        item = self.getPlotItem()
        item.setLabel("bottom", "time", units="s")
        item.setLabel("left", left, units=left_units, color=COLORS["left"])
        item.showAxis("right")
        item.setLabel("right", right, units=right_units, color=COLORS["right"])
        item.showGrid(x=True, y=True, alpha=0.2)
        self.right_view = pg.ViewBox()
        item.scene().addItem(self.right_view)
        item.getAxis("right").linkToView(self.right_view)
        self.right_view.setXLink(item)
        item.getViewBox().sigResized.connect(self._sync)
        pen = {k: pg.mkPen(c, width=2) for k, c in COLORS.items()}
        self.left_curve = item.plot([], [], pen=pen["left"], symbol="o", symbolSize=4)
        self.right_curve = pg.PlotDataItem(
            [], [], pen=pen["right"], symbol="t", symbolSize=4, symbolBrush=COLORS["right"]
        )
        self.right_view.addItem(self.right_curve)
        self.x: deque[float] = deque(maxlen=MAX_POINTS)
        self.y_left: deque[float] = deque(maxlen=MAX_POINTS)
        self.y_right: deque[float] = deque(maxlen=MAX_POINTS)
        self.dirty = False

    def _sync(self) -> None:
        vb = self.getPlotItem().getViewBox()
        self.right_view.setGeometry(vb.sceneBoundingRect())
        self.right_view.linkedViewChanged(vb, self.right_view.XAxis)

    def add(self, x: float, left: float, right: float) -> None:
        self.x.append(float(x))
        self.y_left.append(float(left))
        self.y_right.append(float(right))
        self.dirty = True

    def redraw(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        x = np.fromiter(self.x, float, len(self.x))
        for curve, ys in ((self.left_curve, self.y_left), (self.right_curve, self.y_right)):
            y = np.fromiter(ys, float, len(ys))
            ok = np.isfinite(y)
            curve.setData(x[ok], y[ok])
        self.right_view.enableAutoRange()
        self._sync()


class OptimizerPanel(QtWidgets.QGroupBox):
    """Optimizer on/off, a plot of its choices and a plot of signal and bleaching."""

    optimizer_toggled = Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Optimizer", parent)
        self.toggle = QtWidgets.QCheckBox("Optimizer on")
        self.toggle.toggled.connect(self.optimizer_toggled)
        self.reason_label = QtWidgets.QLabel("no decision yet")
        self.reason_label.setWordWrap(True)
        self.choices = TwinPlot("Choices", "power", "exposure", "mW", "ms")
        self.signal = TwinPlot("Signal and bleaching", "signal", "surviving", "e⁻", "")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.toggle)
        layout.addWidget(self.reason_label)
        layout.addWidget(self.choices, 1)
        layout.addWidget(self.signal, 1)
        self.decisions = 0
        self.metrics = 0

    def add_decision(self, x: float, decision: Decision) -> None:
        power, exposure = decision.power_mw, decision.exposure_ms
        self.choices.add(
            x,
            math.nan if power is None else float(power),
            math.nan if exposure is None else float(exposure),
        )
        parts = [f"t {decision.t}"]
        if power is not None:
            parts.append(f"{float(power):.3g} mW")
        if exposure is not None:
            parts.append(f"{float(exposure):.3g} ms")
        if decision.modality:
            parts.append(decision.modality)
        reason = decision.reason
        self.reason_label.setText(", ".join(parts) + (f": {reason}" if reason else ""))
        self.decisions += 1

    def add_metrics(self, x: float, metrics: SetMetrics) -> None:
        self.signal.add(x, float(metrics.signal), float(metrics.surviving_fraction))
        self.metrics += 1

    def redraw(self) -> None:
        self.choices.redraw()
        self.signal.redraw()
