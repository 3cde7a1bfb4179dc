"""Live raw | super-resolved viewer (qtpy + pyqtgraph).

Producers on other threads never touch Qt: :meth:`LiveViewer.submit`,
:meth:`~LiveViewer.submit_result`, :meth:`~LiveViewer.show_metrics`,
:meth:`~LiveViewer.show_decision`, :meth:`~LiveViewer.show_status` and friends only store
the newest item (latest wins) or append to a short queue. A QTimer on the GUI thread applies
them at ``display_hz`` (and pulls the newest raw set from a ``raw_source`` when a live
session is attached), so GUI work is throttled to the display rate and never blocks
acquisition. The two image panels use micrometre coordinates: each ImageItem is scaled by
its pixel size and the two ViewBoxes are X/Y-linked, so zoom and pan match physically.

Given a profile, the window also has the acquisition controls (:mod:`.controls`: Start,
Stop, Snap, modality, laser line, exposure and per-line power bounded by the profile's
limits), live rates and latency percentiles, the SR confidence, a status line for device and
sequencing errors, and the optimizer panel (:mod:`.plots`).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg  # after qtpy, so pyqtgraph uses the binding qtpy chose
from qtpy import QtCore, QtGui, QtWidgets
from qtpy.QtCore import Signal

from srlive.pipeline.summary import smlm_status
from srlive.viewer.controls import MODALITIES, ControlPanel
from srlive.viewer.display import display_available, headless_qpa
from srlive.viewer.panels import RAW_MODES, ErrorView, ImagePanel
from srlive.viewer.plots import OptimizerPanel
from srlive.viewer.status_text import format_info, format_stats

if TYPE_CHECKING:
    from srlive.optimize.decision import Decision
    from srlive.pipeline.session import LiveSettings
    from srlive.pipeline.stream import Preview
    from srlive.profiles import Profile
    from srlive.recon.set_metrics import SetMetrics

RawSource = Callable[[Callable[[np.ndarray], np.ndarray]], "Preview | None"]
STATS_HZ = 4.0  # rates and percentiles are refreshed this often
RATE_WINDOW_S = 2.0  # frame and SR rates are averaged over this long

__all__ = ["LiveViewer", "display_available", "format_info", "format_stats", "run_with_viewer"]

RAW_TITLE = "Raw (widefield sum / last frame)"
SR_TITLE = "Super-resolved"


class LiveViewer(QtWidgets.QMainWindow):
    """Main window: raw panel | SR panel, status bar; with a profile, controls and plots."""

    stop_requested = Signal()
    closing = Signal()
    start_requested = Signal()
    snap_requested = Signal()
    modality_changed = Signal(str)
    line_changed = Signal(int)
    exposure_changed = Signal(float)
    power_changed = Signal(int, float)
    optimizer_toggled = Signal(bool)

    def __init__(
        self,
        *,
        raw_pixel_nm: float,
        sr_pixel_nm: float,
        title: str = "srlive",
        display_hz: float = 30.0,
        profile: Profile | None = None,
        modalities: tuple[str, ...] = MODALITIES,
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
        self._t0 = time.perf_counter()
        self._result: Any = None  # newest SR result not shown yet (latest wins)
        self._queued: deque[tuple[str, Any, float]] = deque(maxlen=1000)  # metrics, decisions
        self._raw_source: RawSource | None = None
        self._stats_source: Callable[[], dict[str, Any]] | None = None
        self._on_displayed: Callable[[Any], None] | None = None
        self._stats_history: deque[tuple[float, dict[str, Any]]] = deque()
        self._next_stats = 0.0
        self.results_shown = 0

        self.graphics = pg.GraphicsLayoutWidget()
        layout = self.graphics.ci
        self.raw_panel = ImagePanel(layout, RAW_TITLE, self.raw_pixel_nm / 1000.0, col=0)
        self.sr_panel = ImagePanel(layout, SR_TITLE, self.sr_pixel_nm / 1000.0, col=2)
        grid = layout.layout  # the QGraphicsGridLayout: image columns share the width equally
        for col, stretch in enumerate((1, 0, 1, 0)):
            grid.setColumnStretchFactor(col, stretch)
        self.sr_panel.plot.setXLink(self.raw_panel.plot)
        self.sr_panel.plot.setYLink(self.raw_panel.plot)
        self.error_view = ErrorView(layout, self.sr_panel, col=4)  # off until ticked

        self.mode_box = QtWidgets.QComboBox()
        self.mode_box.addItems(list(RAW_MODES))
        self.mode_box.currentIndexChanged.connect(self._on_mode_changed)
        self.auto_button = QtWidgets.QPushButton("Auto levels")
        self.auto_button.clicked.connect(self.auto_levels)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setStyleSheet("font-weight: bold")
        self.stop_button.clicked.connect(self._on_stop)
        self.stats_label = QtWidgets.QLabel("")
        self.confidence_label = QtWidgets.QLabel("")
        self.confidence_label.setStyleSheet("font-weight: bold")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Raw:"))
        bar.addWidget(self.mode_box)
        bar.addWidget(self.auto_button)
        bar.addWidget(self.stats_label, 1)
        bar.addWidget(self.confidence_label)
        bar.addWidget(self.error_view.box)
        images = QtWidgets.QWidget()
        vbox = QtWidgets.QVBoxLayout(images)
        vbox.setContentsMargins(4, 4, 4, 4)
        vbox.addWidget(self.graphics, 1)
        vbox.addLayout(bar)
        self.controls: ControlPanel | None = None
        self.optimizer_panel: OptimizerPanel | None = None
        if profile is None:
            bar.addWidget(self.stop_button)
            self.setCentralWidget(images)
            self.resize(1200, 650)
        else:
            self._build_side(profile, modalities, images)
            self.resize(1600, 800)
        self.status_label = QtWidgets.QLabel("waiting for data")
        self.statusBar().addWidget(self.status_label, 1)
        self.setMinimumSize(800, 400)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(1, round(1000.0 / display_hz)))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def _build_side(self, profile: Profile, modalities: tuple[str, ...], images: Any) -> None:
        """Controls and the optimizer panel in a column right of the images."""
        self.stop_button.hide()  # the control panel has its own Stop
        self.controls = ControlPanel(profile, modalities)
        c = self.controls
        c.start_requested.connect(self.start_requested)
        c.stop_requested.connect(self.stop_requested)
        c.snap_requested.connect(self.snap_requested)
        c.modality_changed.connect(self.modality_changed)
        c.line_changed.connect(self.line_changed)
        c.exposure_changed.connect(self.exposure_changed)
        c.power_changed.connect(self.power_changed)
        self.optimizer_panel = OptimizerPanel()
        self.optimizer_panel.optimizer_toggled.connect(self.optimizer_toggled)
        side = QtWidgets.QWidget()
        col = QtWidgets.QVBoxLayout(side)
        col.setContentsMargins(4, 4, 4, 4)
        col.addWidget(self.controls)
        col.addWidget(self.optimizer_panel, 1)
        splitter = QtWidgets.QSplitter()
        splitter.addWidget(images)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

    # -- producer side (any thread) --------------------------------------------------------
    def set_raw_source(self, source: RawSource | None) -> None:
        """A callable ``source(render) -> (image, info) | None`` polled at the display rate."""
        self._raw_source = source

    def set_stats_source(self, source: Callable[[], dict[str, Any]] | None) -> None:
        """A callable returning counts and latency percentiles (polled a few times a second)."""
        self._stats_source = source

    def set_display_callback(self, callback: Callable[[Any], None] | None) -> None:
        """Called (GUI thread) with each SR result right after it is shown."""
        self._on_displayed = callback

    def submit_result(self, result: Any) -> None:
        """Offer an SR result (``image``, ``confidence``, ``t``...); latest wins."""
        with self._lock:
            if self._result is not None:
                self.display_dropped += 1
            self._result = result

    def show_metrics(self, metrics: SetMetrics) -> None:
        """Signal / bleaching / SNR / confidence of a set: plotted over time."""
        self._queue("metrics", metrics)

    def show_decision(self, decision: Decision) -> None:
        """An optimizer decision (power, exposure, modality, reason): plotted."""
        self._queue("decision", decision)

    def show_status(self, message: str, error: bool = False) -> None:
        """A line in the status bar (red for device and sequencing errors)."""
        self._queue("status", (str(message), bool(error)))

    def set_state(self, state: str) -> None:
        """The session's state ("idle", "running", "stopping"): enables the buttons."""
        self._queue("state", str(state))

    def set_settings(self, settings: LiveSettings) -> None:
        """The settings in effect (a copy): shown in the controls."""
        self._queue("settings", settings)

    def set_optimizer_available(self, available: bool) -> None:
        """Enable the optimizer toggle only when an optimizer is connected."""
        self._queue("optimizer", bool(available))

    def _queue(self, kind: str, value: object) -> None:
        with self._lock:
            self._queued.append((kind, value, time.perf_counter() - self._t0))

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
        if self.mode_box.currentIndex() == 1:  # a copy: the ring slot goes back after this
            return frames[-1].copy()
        return frames.sum(axis=0, dtype=np.float32)

    def refresh(self) -> bool:
        """Apply everything that arrived since the last tick (called by the timer).

        True if a submitted raw/SR item or a new raw set was shown.
        """
        with self._lock:
            item, self._pending = self._pending, None
            result, self._result = self._result, None
            queued = list(self._queued)
            self._queued.clear()
        shown = False
        if item is not None:
            raw, sr, info = item
            self.raw_panel.show(self.raw_display_image(raw))
            if sr is not None:
                self._show_sr(np.asarray(sr), np.shape(raw)[-1])
            self.last_info = dict(info)
            self.status_label.setText(format_info(info))
            self.displayed += 1
            shown = True
        if self._raw_source is not None and (preview := self._raw_source(self.raw_display_image)):
            self.raw_panel.show(preview.image)
            self.displayed += 1
            shown = True
        if result is not None:
            self._show_result(result)
        for kind, value, when in queued:
            self._apply(kind, value, when)
        if self.optimizer_panel is not None:
            self.optimizer_panel.redraw()
        self._update_stats()
        return shown

    def _show_sr(self, image: np.ndarray, raw_width: int | None) -> None:
        """The SR panel at the pixel size of this image's grid (eSRRF: the camera's / m)."""
        if raw_width:
            self.sr_panel.set_pixel_um(self.raw_pixel_nm * raw_width / image.shape[-1] / 1000.0)
        self.sr_panel.show(image)

    def _show_result(self, result: Any) -> None:
        raw_sum = getattr(result, "raw_sum", None)
        raw_width = None
        if self.raw_panel.has_image:
            raw_width = self.raw_panel.item.image.shape[-1]
        elif raw_sum is not None:
            raw_width = raw_sum.shape[-1]
        self._show_sr(np.asarray(result.image), raw_width)
        self.error_view.show(getattr(result, "error", None), self.sr_panel.pixel_um)
        conf = float(getattr(result, "confidence", math.nan))
        text = f"SR confidence {conf:.2f}" if math.isfinite(conf) else "SR confidence —"
        if details := getattr(result, "details", None):  # localisation: count, rate, density
            text = smlm_status(details)
        self.confidence_label.setText(f"{text}  (set {result.t})")
        self.results_shown += 1
        if self._on_displayed is not None:
            self._on_displayed(result)

    def _apply(self, kind: str, value: Any, when: float) -> None:
        if kind == "metrics" and self.optimizer_panel is not None:
            self.optimizer_panel.add_metrics(when, value)
        elif kind == "decision" and self.optimizer_panel is not None:
            self.optimizer_panel.add_decision(when, value)
        elif kind == "status":
            message, error = value
            self.status_label.setStyleSheet("color: #d03030" if error else "")
            self.status_label.setText(message)
        elif kind == "state" and self.controls is not None:
            self.controls.set_running(value != "idle")
            if value == "stopping":
                self.controls.stop_button.setEnabled(False)
                self.controls.stop_button.setText("Stopping…")
        elif kind == "settings" and self.controls is not None:
            self.controls.set_settings(value)
        elif kind == "optimizer" and self.optimizer_panel is not None:
            self.optimizer_panel.toggle.setEnabled(value)
            tip = "" if value else "no optimizer is connected to this session"
            self.optimizer_panel.toggle.setToolTip(tip)

    def _update_stats(self) -> None:
        now = time.perf_counter()
        if self._stats_source is None or now < self._next_stats:
            return
        self._next_stats = now + 1.0 / STATS_HZ
        stats = self._stats_source()
        history = self._stats_history
        while len(history) > 1 and now - history[1][0] >= RATE_WINDOW_S:
            history.popleft()  # rates over the last RATE_WINDOW_S seconds
        self.stats_label.setText(format_stats(stats, history[0] if history else None, now))
        history.append((now, stats))

    def auto_levels(self) -> None:
        """Re-fit the LUT levels of both panels on the next image (and now, if shown)."""
        for panel in (self.raw_panel, self.sr_panel, self.error_view.panel):
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
        if self.controls is None:
            self._emit_stop()
        self.closing.emit()
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
    profile: Profile | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Show a :class:`LiveViewer` and run ``worker(viewer, stop_event)`` in a thread.

    ``stop_event`` (``stop`` when given) is set when the window closes, and also by the Stop
    button when there are no session controls (no ``profile``); the Qt loop ends when the
    worker returns. A worker exception is re-raised here afterwards.
    """
    app = QtWidgets.QApplication.instance()
    if app is None:
        if not display_available() and not headless_qpa():
            # Qt would abort the process trying to reach a display
            raise RuntimeError("no display: set DISPLAY, or QT_QPA_PLATFORM=offscreen")
        app = QtWidgets.QApplication(sys.argv[:1])
    viewer = LiveViewer(
        raw_pixel_nm=raw_pixel_nm,
        sr_pixel_nm=sr_pixel_nm,
        title=title,
        display_hz=display_hz,
        profile=profile,
    )
    stop_event = stop if stop is not None else threading.Event()
    viewer.closing.connect(stop_event.set)
    if profile is None:
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
