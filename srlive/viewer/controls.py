"""Acquisition controls: Start/Stop/Snap, modality, laser line, exposure and laser powers.

The spin boxes take their ranges from the profile's hard limits, so a value outside them
cannot be entered; the session checks again (``Microscope.set_power/set_exposure`` refuse
out-of-limit values) before anything reaches the core.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from qtpy import QtWidgets
from qtpy.QtCore import Signal

from srlive.profiles import Profile

if TYPE_CHECKING:
    from srlive.pipeline.session import LiveSettings

MODALITIES = ("widefield", "sim9", "sim3")


class ControlPanel(QtWidgets.QGroupBox):
    """Buttons and setting widgets; emits what the user asks for, shows what is applied."""

    start_requested = Signal()
    stop_requested = Signal()
    snap_requested = Signal()
    modality_changed = Signal(str)
    line_changed = Signal(int)
    exposure_changed = Signal(float)
    power_changed = Signal(int, float)

    def __init__(
        self,
        profile: Profile,
        modalities: Iterable[str] = MODALITIES,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__("Acquisition", parent)
        limits = profile.limits
        self.start_button = QtWidgets.QPushButton("Start")
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setStyleSheet("font-weight: bold")
        self.snap_button = QtWidgets.QPushButton("Snap")
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self._on_stop)
        self.snap_button.clicked.connect(self.snap_requested)

        self.modality_box = QtWidgets.QComboBox()
        self.modality_box.addItems(list(modalities))
        self.modality_box.currentTextChanged.connect(self.modality_changed)
        self.line_box = QtWidgets.QComboBox()
        for line in profile.laser_lines:
            self.line_box.addItem(f"{line} nm", line)
        self.line_box.currentIndexChanged.connect(
            lambda i: self.line_changed.emit(int(self.line_box.itemData(i)))
        )
        self.exposure_spin = self._spin(limits.min_exposure_ms, limits.max_exposure_ms, " ms")
        self.exposure_spin.valueChanged.connect(self.exposure_changed)
        self.power_spins: dict[int, QtWidgets.QDoubleSpinBox] = {}

        form = QtWidgets.QFormLayout()
        form.addRow("Modality", self.modality_box)
        form.addRow("Laser line", self.line_box)
        form.addRow("Exposure", self.exposure_spin)
        for line in profile.laser_lines:
            spin = self._spin(0.0, float(limits.max_power_mw[line]), " mW")
            spin.valueChanged.connect(lambda v, ln=line: self.power_changed.emit(ln, float(v)))
            self.power_spins[line] = spin
            form.addRow(f"Power {line}", spin)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_button, self.stop_button, self.snap_button):
            buttons.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(form)
        self.set_running(False)

    @staticmethod
    def _spin(lo: float, hi: float, suffix: str) -> QtWidgets.QDoubleSpinBox:
        spin = QtWidgets.QDoubleSpinBox()
        spin.setDecimals(2)
        spin.setRange(float(lo), float(hi))  # the profile's hard limits
        spin.setSuffix(suffix)
        spin.setKeyboardTracking(False)  # one change per edit, not per keystroke
        spin.setSingleStep(1.0)
        return spin

    def _on_stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.stop_button.setText("Stopping…")
        self.stop_requested.emit()

    def set_running(self, running: bool) -> None:
        """Buttons for a running (Stop) or idle (Start, Snap) session."""
        self.start_button.setEnabled(not running)
        self.snap_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.stop_button.setText("Stop")

    def set_settings(self, settings: LiveSettings) -> None:
        """Show the applied settings (no change signals are emitted)."""
        widgets = [self.modality_box, self.line_box, self.exposure_spin, *self.power_spins.values()]
        for w in widgets:
            w.blockSignals(True)
        try:
            self.modality_box.setCurrentText(settings.modality)
            i = self.line_box.findData(int(settings.line))
            if i >= 0:
                self.line_box.setCurrentIndex(i)
            self.exposure_spin.setValue(float(settings.exposure_ms))
            for line, mw in settings.power_mw.items():
                if int(line) in self.power_spins:
                    self.power_spins[int(line)].setValue(float(mw))
        finally:
            for w in widgets:
                w.blockSignals(False)
