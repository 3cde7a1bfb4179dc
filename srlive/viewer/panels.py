"""The live window's image panels: one image with its histogram, and the SR error map.

Each :class:`ImagePanel` is a PlotItem in micrometre coordinates (the ImageItem scaled by
its pixel size) with a HistogramLUTItem. :class:`ErrorView` is the panel right of the SR
image that shows the error a learned reconstruction expects at each of its pixels (the map
stored as ``sr_error``), in the SR image's units and linked to its view; off until its box
is ticked, and saying so when the reconstruction predicts no error.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg  # after qtpy, so pyqtgraph uses the binding qtpy chose
from qtpy import QtGui, QtWidgets

AXIS_WIDTH = 48  # px, left axis of each panel
HIST_WIDTH = 150  # px, histogram/LUT of each panel
HIST_AXIS_WIDTH = 60  # px, room for level labels such as "65000"
RAW_MODES = ("widefield sum", "last frame")
ERROR_TITLE = "Expected error (SR units)"
NO_ERROR_TITLE = "Expected error: none (this reconstruction predicts none)"


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


class ErrorView:
    """The SR image's expected error map in a panel right of the SR panel (a learned
    reconstruction's ``sr_error``), shown while :attr:`box` is ticked."""

    def __init__(self, layout: pg.GraphicsLayout, sr_panel: ImagePanel, col: int) -> None:
        self.layout, self.col = layout, col
        self.panel = ImagePanel(layout, ERROR_TITLE, sr_panel.pixel_um, col)
        self.panel.plot.setXLink(sr_panel.plot)
        self.panel.plot.setYLink(sr_panel.plot)
        self.box = QtWidgets.QCheckBox("Error map")
        self.box.setToolTip("show the error the learned model expects at each SR pixel")
        self.box.toggled.connect(self._set_visible)
        self.latest: np.ndarray | None = None
        self.shown = 0  # error maps put on screen
        self._set_visible(False)

    @property
    def visible(self) -> bool:
        return self.box.isChecked()

    def _set_visible(self, on: bool) -> None:
        grid = self.layout.layout
        for item, col in ((self.panel.plot, self.col), (self.panel.hist, self.col + 1)):
            if on:
                self.layout.addItem(item, row=0, col=col)
            elif item.scene() is not None and item in self.layout.items:
                self.layout.removeItem(item)
            item.setVisible(on)
        grid.setColumnStretchFactor(self.col, 1 if on else 0)
        if on and self.latest is not None:
            self.panel.show(self.latest)
            self.shown += 1

    def show(self, error: Any, pixel_um: float) -> None:
        """The newest result's error map (None: the reconstruction predicts none)."""
        self.latest = None if error is None else np.asarray(error)
        self.panel.plot.setTitle(ERROR_TITLE if error is not None else NO_ERROR_TITLE)
        if self.visible and self.latest is not None:
            self.panel.set_pixel_um(pixel_um)
            self.panel.show(self.latest)
            self.shown += 1
