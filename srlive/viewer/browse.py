"""`srlive view STORE.zarr`: browse a saved acquisition (raw and SR side by side over time).

Works for a run store (live or protocol: a root collection of series, one per modality or
per ``p<position>_c<channel>``) and for one series store on its own.
A time slider picks the set; the SR panel says when the live pipeline skipped a set, and
shows the confidence and reconstruction time stored with each SR image.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from srlive.storage import StoreDamagedError, StoreReader, open_store
from srlive.storage import find_series as storage_series
from srlive.viewer.panels import RAW_MODES, ImagePanel

RUN_SERIES = "run"  # the name shown for a series store opened on its own


def find_series(path: str | Path) -> dict[str, Path]:
    """The series of a store by name."""
    return {name or RUN_SERIES: p for name, p in storage_series(path).items()}


class StoreBrowser(QtWidgets.QMainWindow):
    """Raw | SR panels, a series chooser and a time slider over a saved store."""

    def __init__(self, path: str | Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.series = find_series(self.path)
        self.setWindowTitle(f"srlive view — {self.path.name}")
        self.reader: StoreReader | None = None
        self._status: dict[int, str] = {}
        self._sr_rows: dict[int, dict[str, Any]] = {}

        self.graphics = pg.GraphicsLayoutWidget()
        layout = self.graphics.ci
        self.raw_panel = ImagePanel(layout, "Raw", 0.065, col=0)
        self.sr_panel = ImagePanel(layout, "Super-resolved", 0.0325, col=2)
        for col, stretch in enumerate((1, 0, 1, 0)):
            layout.layout.setColumnStretchFactor(col, stretch)
        self.sr_panel.plot.setXLink(self.raw_panel.plot)
        self.sr_panel.plot.setYLink(self.raw_panel.plot)

        self.series_box = QtWidgets.QComboBox()
        self.series_box.addItems(list(self.series))
        self.series_box.currentTextChanged.connect(self.set_series)
        self.mode_box = QtWidgets.QComboBox()
        self.mode_box.addItems(list(RAW_MODES))
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.mode_box.currentIndexChanged.connect(lambda _: self.set_t(self.slider.value()))
        self.slider.valueChanged.connect(self.set_t)
        self.t_label = QtWidgets.QLabel()
        self.info_label = QtWidgets.QLabel()
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Series:"))
        bar.addWidget(self.series_box)
        bar.addWidget(QtWidgets.QLabel("Raw:"))
        bar.addWidget(self.mode_box)
        bar.addWidget(self.t_label)
        bar.addWidget(self.slider, 1)
        central = QtWidgets.QWidget()
        vbox = QtWidgets.QVBoxLayout(central)
        vbox.addWidget(self.graphics, 1)
        vbox.addLayout(bar)
        vbox.addWidget(self.info_label)
        self.setCentralWidget(central)
        self.resize(1200, 700)
        self.set_series(self.series_box.currentText())

    @property
    def n_sets(self) -> int:
        return self.reader.n_sets if self.reader is not None else 0

    def set_series(self, name: str) -> None:
        """Show series ``name`` from its first set."""
        self.reader = open_store(self.series[name])
        r = self.reader
        self.raw_panel.item.setTransform(_scale(r.pixel_nm))
        if r.sr_pixel_nm:
            self.sr_panel.item.setTransform(_scale(r.sr_pixel_nm))
        self._status = r.sr_status() if r.sr is not None else {}
        table = r.sr_table
        self._sr_rows = {
            int(t): {k: table[k][i] for k in table if k != "t"} for i, t in enumerate(table["t"])
        }
        for panel in (self.raw_panel, self.sr_panel):
            panel.auto_next = True
            panel.has_image = False
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, self.n_sets - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.set_t(0)

    def set_t(self, t: int) -> None:
        """Show raw set ``t`` and its SR image (or why there is none)."""
        r = self.reader
        if r is None or self.n_sets == 0:
            self.t_label.setText("no sets")
            return
        t = int(np.clip(t, 0, self.n_sets - 1))
        try:
            frames = r.read_set(t).reshape(-1, *r.raw.shape[-2:])
        except StoreDamagedError as exc:  # say so in the window; never show fill as data
            self.raw_panel.item.clear()
            self.sr_panel.item.clear()
            self.t_label.setText(f"set {t + 1}/{self.n_sets}: damaged")
            self.info_label.setText(str(exc))
            return
        raw = frames[-1] if self.mode_box.currentIndex() == 1 else frames.sum(0, np.float32)
        self.raw_panel.show(raw)
        self.t_label.setText(f"set {t + 1}/{self.n_sets}")
        self.info_label.setText(self._describe(t))
        if r.sr is None or self._status.get(t) != "reconstructed":
            self.sr_panel.item.clear()
            title = "no SR in this series" if r.sr is None else f"set {t}: {self.sr_state(t)}"
        else:
            try:
                self.sr_panel.show(r.read_sr(t))
                title = f"Super-resolved ({r.attrs.get('sr_method')})"
            except StoreDamagedError as exc:
                self.sr_panel.item.clear()
                title = f"set {t}: SR image damaged"
                self.info_label.setText(str(exc))
        self.sr_panel.plot.setTitle(title)

    def sr_state(self, t: int) -> str:
        """ "reconstructed", "skipped" or "none" for set ``t``."""
        return self._status.get(t, "none")

    def _describe(self, t: int) -> str:
        r = self.reader
        assert r is not None
        parts = [f"{r.attrs['run'].get('modality', '')} set {t}"]
        if r.sr is not None:
            state = self.sr_state(t)
            row = self._sr_rows.get(t, {})
            text = f"SR {state}"
            conf = float(row.get("confidence", math.nan))
            if state == "reconstructed" and math.isfinite(conf):
                text += f", confidence {conf:.2f}"
            if state == "reconstructed" and math.isfinite(float(row.get("recon_ms", math.nan))):
                text += f", {float(row['recon_ms']):.0f} ms"
            parts.append(text)
            skipped = sum(1 for s in self._status.values() if s == "skipped")
            parts.append(f"{skipped} of {len(self._status)} sets skipped by the live pipeline")
        return "  |  ".join(parts)


def _scale(pixel_nm: float) -> Any:
    from qtpy import QtGui

    um = pixel_nm / 1000.0
    return QtGui.QTransform.fromScale(um, um)


def view_store(
    path: str | Path, series: str | None = None, t: int = 0, snapshot: Path | None = None
) -> Path | None:
    """Open the browser (blocking), or save a PNG of it when ``snapshot`` is given."""
    import sys

    from srlive.viewer.display import display_available, offscreen_without_display

    names = find_series(path)  # bad input fails before Qt starts
    if series is not None and series not in names:
        raise ValueError(f"no series {series!r} in {path} (has {', '.join(names)})")
    first = open_store(names[series or next(iter(names))])  # damaged metadata or tables
    if not 0 <= t < max(first.n_sets, 1):
        raise ValueError(
            f"no set {t} in {first.path} (it has {first.n_sets}: 0-{first.n_sets - 1})"
        )
    if first.n_sets:
        first.read_set(t)  # a missing, truncated or corrupted chunk: one line, before Qt
    if snapshot is None and not display_available():
        raise ValueError("no display to show the store on (use --snapshot PNG)")
    app = QtWidgets.QApplication.instance()
    if app is None:
        if snapshot is not None:
            offscreen_without_display()
        app = QtWidgets.QApplication(sys.argv[:1])
    browser = StoreBrowser(path)
    if series is not None:
        browser.series_box.setCurrentText(series)
    browser.slider.setValue(t)
    if snapshot is not None:
        browser.show()
        app.processEvents()
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not browser.grab().save(str(snapshot), "PNG"):
                raise OSError(f"could not write {snapshot}")
        finally:
            browser.close()
            browser.deleteLater()  # deleted by Qt, not by Python's garbage collector
        return snapshot
    browser.show()
    app.exec()
    return None
