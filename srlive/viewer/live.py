"""Live raw | super-resolved viewer (qtpy + pyqtgraph).

The acquisition thread calls :meth:`LiveViewer.submit`, which only stores a reference to
the newest item (latest wins). A QTimer on the GUI thread pulls that item at ``display_hz``
and updates the two panels, whose coordinates are micrometres: each ImageItem is scaled by
its pixel size and the two ViewBoxes are X/Y-linked, so zoom and pan match physically.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg  # after qtpy, so pyqtgraph uses the binding qtpy chose
from qtpy import QtCore, QtGui, QtWidgets
from qtpy.QtCore import Signal

__all__ = ["LiveViewer", "display_available", "format_info", "run_with_viewer"]

RAW_TITLE = "Raw (widefield sum / last frame)"
SR_TITLE = "Super-resolved"
RAW_MODES = ("widefield sum", "last frame")
_HEADLESS_QPA = ("offscreen", "minimal")
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


def _headless_qpa() -> bool:
    return os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].lower() in _HEADLESS_QPA


def display_available() -> bool:
    """True if a GUI window can be shown on this machine."""
    if _headless_qpa():
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.1f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def format_info(info: Mapping[str, Any]) -> str:
    """One status-bar line from an ``info`` dict (``info["status"]`` goes last)."""
    parts = [f"{label} {_fmt(info[k])}" for k, label in _INFO_LABELS.items() if k in info]
    parts += [f"{k}={_fmt(v)}" for k, v in info.items() if k not in _INFO_LABELS and k != "status"]
    if info.get("status"):
        parts.append(str(info["status"]))
    return "  |  ".join(parts)


class _Panel:
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

    def show(self, image: np.ndarray) -> None:
        first = not self.has_image
        self.item.setImage(image, autoLevels=self.auto_next)
        self.auto_next = False
        self.has_image = True
        if first:
            self.plot.autoRange(padding=0)


class LiveViewer(QtWidgets.QMainWindow):
    """Main window: raw panel | SR panel, status bar and a Stop button."""

    stop_requested = Signal()

    def __init__(
        self,
        *,
        raw_pixel_nm: float,
        sr_pixel_nm: float,
        title: str = "srlive",
        display_hz: float = 30.0,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if raw_pixel_nm <= 0 or sr_pixel_nm <= 0 or display_hz <= 0:
            raise ValueError("pixel sizes and display_hz must be positive")
        self.setWindowTitle(title)
        self.raw_pixel_nm = float(raw_pixel_nm)
        self.sr_pixel_nm = float(sr_pixel_nm)
        self._lock = threading.Lock()
        self._pending: tuple[np.ndarray, np.ndarray | None, dict[str, Any]] | None = None
        self._stop_emitted = False
        self.submitted = 0  # items given to submit()
        self.displayed = 0  # items shown
        self.display_dropped = 0  # items replaced before the timer showed them
        self.last_info: dict[str, Any] = {}

        self.graphics = pg.GraphicsLayoutWidget()
        layout = self.graphics.ci
        self.raw_panel = _Panel(layout, RAW_TITLE, self.raw_pixel_nm / 1000.0, col=0)
        self.sr_panel = _Panel(layout, SR_TITLE, self.sr_pixel_nm / 1000.0, col=2)
        grid = layout.layout  # the QGraphicsGridLayout: image columns share the width equally
        for col, stretch in enumerate((1, 0, 1, 0)):
            grid.setColumnStretchFactor(col, stretch)
        self.sr_panel.plot.setXLink(self.raw_panel.plot)
        self.sr_panel.plot.setYLink(self.raw_panel.plot)

        self.mode_box = QtWidgets.QComboBox()
        self.mode_box.addItems(list(RAW_MODES))
        self.mode_box.currentIndexChanged.connect(self._on_mode_changed)
        self.auto_button = QtWidgets.QPushButton("Auto levels")
        self.auto_button.clicked.connect(self.auto_levels)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setStyleSheet("font-weight: bold")
        self.stop_button.clicked.connect(self._on_stop)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Raw:"))
        bar.addWidget(self.mode_box)
        bar.addWidget(self.auto_button)
        bar.addStretch(1)
        bar.addWidget(self.stop_button)
        central = QtWidgets.QWidget()
        vbox = QtWidgets.QVBoxLayout(central)
        vbox.setContentsMargins(4, 4, 4, 4)
        vbox.addWidget(self.graphics, 1)
        vbox.addLayout(bar)
        self.setCentralWidget(central)
        self.status_label = QtWidgets.QLabel("waiting for data")
        self.statusBar().addWidget(self.status_label, 1)
        self.setMinimumSize(800, 400)
        self.resize(1200, 650)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(1, round(1000.0 / display_hz)))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    # -- producer side (any thread) --------------------------------------------------------
    def submit(self, raw: np.ndarray, sr: np.ndarray | None, info: dict[str, Any]) -> None:
        """Offer the newest raw frame/set and SR image; never blocks, keeps references only.

        ``raw`` is (H, W) or a set (..., H, W); the arrays must not be modified afterwards.
        """
        with self._lock:
            if self._pending is not None:
                self.display_dropped += 1
            self._pending = (raw, sr, info)
            self.submitted += 1

    # -- GUI side ---------------------------------------------------------------------------
    @property
    def raw_item(self) -> pg.ImageItem:
        return self.raw_panel.item

    @property
    def sr_item(self) -> pg.ImageItem:
        return self.sr_panel.item

    @property
    def raw_view(self) -> pg.ViewBox:
        return self.raw_panel.plot.getViewBox()

    @property
    def sr_view(self) -> pg.ViewBox:
        return self.sr_panel.plot.getViewBox()

    def raw_display_image(self, raw: np.ndarray) -> np.ndarray:
        """The 2-D image the raw panel shows for ``raw`` in the current mode."""
        arr = np.asarray(raw)
        if arr.ndim == 2:
            return arr
        frames = arr.reshape(-1, *arr.shape[-2:])
        if self.mode_box.currentIndex() == 1:
            return frames[-1]
        return frames.sum(axis=0, dtype=np.float32)

    def refresh(self) -> bool:
        """Show the newest submitted item, if any (called by the timer); True if shown."""
        with self._lock:
            item, self._pending = self._pending, None
        if item is None:
            return False
        raw, sr, info = item
        self.raw_panel.show(self.raw_display_image(raw))
        if sr is not None:
            self.sr_panel.show(np.asarray(sr))
        self.last_info = dict(info)
        self.status_label.setText(format_info(info))
        self.displayed += 1
        return True

    def auto_levels(self) -> None:
        """Re-fit the LUT levels of both panels on the next image (and now, if shown)."""
        for panel in (self.raw_panel, self.sr_panel):
            panel.auto_next = True
            if panel.item.image is not None:
                panel.show(panel.item.image)

    def snapshot(self, path: str | os.PathLike[str]) -> Path:
        """Save a PNG of the window (after showing the newest item)."""
        self.refresh()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(out), "PNG"):
            raise OSError(f"could not write {out}")
        return out

    def _on_mode_changed(self, _index: int) -> None:
        self.raw_panel.auto_next = True  # a sum and a single frame have different ranges

    def _on_stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.stop_button.setText("Stopping…")
        self._emit_stop()

    def _emit_stop(self) -> None:
        if not self._stop_emitted:
            self._stop_emitted = True
            self.stop_requested.emit()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.timer.stop()
        self._emit_stop()
        super().closeEvent(event)


class _Finished(QtCore.QObject):
    """Carries 'worker finished' from the worker thread to the GUI thread (queued)."""

    finished = Signal()


def run_with_viewer(
    worker: Callable[[LiveViewer, threading.Event], None],
    *,
    raw_pixel_nm: float,
    sr_pixel_nm: float,
    title: str = "srlive",
    display_hz: float = 30.0,
) -> None:
    """Show a :class:`LiveViewer` and run ``worker(viewer, stop_event)`` in a thread.

    ``stop_event`` is set when the window asks to stop (Stop button or close); the Qt loop
    ends when the worker returns. A worker exception is re-raised here afterwards.
    """
    app = QtWidgets.QApplication.instance()
    if app is None:
        if not display_available() and not _headless_qpa():
            # Qt would abort the process trying to reach a display
            raise RuntimeError("no display: set DISPLAY, or QT_QPA_PLATFORM=offscreen")
        app = QtWidgets.QApplication(sys.argv[:1])
    viewer = LiveViewer(
        raw_pixel_nm=raw_pixel_nm, sr_pixel_nm=sr_pixel_nm, title=title, display_hz=display_hz
    )
    stop_event = threading.Event()
    viewer.stop_requested.connect(stop_event.set)
    errors: list[BaseException] = []
    bridge = _Finished()
    bridge.finished.connect(app.quit, QtCore.Qt.ConnectionType.QueuedConnection)

    def target() -> None:
        try:
            worker(viewer, stop_event)
        except BaseException as exc:
            errors.append(exc)
        finally:
            bridge.finished.emit()

    thread = threading.Thread(target=target, name="srlive-worker", daemon=True)
    viewer.show()
    thread.start()
    try:
        app.exec()
    finally:
        stop_event.set()  # the loop also ends when the last window is closed
        thread.join()
        viewer.refresh()
        viewer.close()
        viewer.deleteLater()
    if errors:
        raise errors[0]
