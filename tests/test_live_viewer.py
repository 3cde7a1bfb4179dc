"""The live window driving a real session on the simulated microscope (pytest-qt, offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

import math
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from qtpy import QtGui

from srlive.errors import SafetyError
from srlive.optimize.decision import Decision
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.recon.set_metrics import SetMetrics
from srlive.viewer.attach import attach_session
from srlive.viewer.window import LiveViewer


class StepOptimizer:
    """Stands in for issue 6's optimizer: alternates two powers, one decision per set."""

    def __init__(self) -> None:
        self.n = 0

    def warm_up(self) -> None:
        pass

    def observe(self, metrics: SetMetrics, sr: object = None) -> None:
        pass

    def propose(self, metrics: SetMetrics) -> Decision:
        self.n += 1
        power = 20.0 if self.n % 2 else 12.0
        exposure = 1.0 + 0.5 * (self.n % 3)
        return Decision(metrics.t + 1, metrics.series, power, exposure, None, "demo")


@pytest.fixture
def live(qtbot, scope, profile, tmp_path):
    """A window with controls attached to a live session (sim3, dl-sim3)."""
    scope.core.setProperty("SimHub", "FrameSize", 256)
    scope.core.setProperty("SimHub", "Sample", "mitochondria")
    session = LiveSession(
        scope,
        LiveSettings("sim3", 488, 1.0, {488: 20.0, 561: 0.0, 640: 0.0}),
        tmp_path / "live.zarr",
        optimizer=StepOptimizer(),
        threads=1,
    )
    session.pipeline.metrics_interval_s = 0.0
    viewer = LiveViewer(
        raw_pixel_nm=profile.optics.pixel_nm,
        sr_pixel_nm=profile.optics.pixel_nm / 2,
        title="srlive test",
        display_hz=30.0,
        profile=profile,
    )
    qtbot.addWidget(viewer)
    attach_session(viewer, session)
    viewer.show()
    qtbot.waitExposed(viewer)
    yield viewer, session
    session.close()


def test_controls_change_the_hardware_through_the_core(qtbot, live, scope) -> None:
    viewer, session = live
    c, core = viewer.controls, scope.core
    qtbot.waitUntil(lambda: c.exposure_spin.value() == pytest.approx(1.0), timeout=2000)
    c.exposure_spin.setValue(4.5)
    assert core.getExposure() == pytest.approx(4.5)
    c.power_spins[561].setValue(33.0)
    assert float(core.getProperty("Laser561", "PowerMW")) == pytest.approx(33.0)
    c.line_box.setCurrentIndex(c.line_box.findData(561))
    c.modality_box.setCurrentText("sim9")
    assert session.settings.line == 561 and session.settings.modality == "sim9"
    assert session.settings.power == 33.0 and session.sequencing() == "hardware"


def test_controls_are_bounded_by_the_profile_limits(qtbot, live, scope, profile) -> None:
    viewer, session = live
    c, core = viewer.controls, scope.core
    limits = profile.limits
    for line, spin in c.power_spins.items():
        assert spin.maximum() == limits.max_power_mw[line] and spin.minimum() == 0
    assert c.exposure_spin.minimum() == limits.min_exposure_ms
    assert c.exposure_spin.maximum() == limits.max_exposure_ms
    c.power_spins[640].setValue(10_000.0)  # typed far above the limit: clamped
    assert c.power_spins[640].value() == 150.0
    assert float(core.getProperty("Laser640", "PowerMW")) == pytest.approx(150.0)
    before = float(core.getProperty("Laser488", "PowerMW"))
    with pytest.raises(SafetyError, match="outside the profile limit"):
        session.set_power(488, 250.0)  # a direct request is refused before the core
    with pytest.raises(SafetyError):
        scope.set_power(488, 250.0)
    viewer.power_changed.emit(488, 250.0)  # a request that bypasses the spin box
    viewer.exposure_changed.emit(5000.0)
    qtbot.waitUntil(lambda: "limit" in viewer.status_label.text(), timeout=2000)
    assert "d03030" in viewer.status_label.styleSheet()  # shown as an error
    assert float(core.getProperty("Laser488", "PowerMW")) == before
    assert core.getExposure() == pytest.approx(1.0)


def test_snap_start_stop_and_screenshot(qtbot, live, scope, tmp_path) -> None:
    viewer, session = live
    c = viewer.controls
    c.snap_button.click()
    qtbot.waitUntil(lambda: viewer.results_shown >= 1 and not session.running, timeout=60_000)
    assert session.pipeline.stats.raw_sets_stored == 1
    assert viewer.raw_item.image is not None and viewer.sr_item.image.shape == (512, 512)
    # dl-sim3's expected error map, shown beside the SR image when asked for
    errors = viewer.error_view
    assert not errors.panel.plot.isVisible() and errors.latest is not None
    errors.box.setChecked(True)
    assert errors.panel.plot.isVisible() and errors.shown == 1
    shown = errors.panel.item.image
    assert shown.shape == (512, 512) and np.isfinite(shown).all() and (shown > 0).all()
    assert c.start_button.isEnabled() and not c.stop_button.isEnabled()

    viewer.optimizer_panel.toggle.setChecked(True)
    c.start_button.click()
    qtbot.waitUntil(lambda: c.stop_button.isEnabled(), timeout=5000)
    qtbot.waitUntil(
        lambda: (
            viewer.results_shown >= 5
            and viewer.optimizer_panel.decisions >= 3
            and viewer.optimizer_panel.metrics >= 10
        ),
        timeout=120_000,
    )
    qtbot.wait(600)  # a few display ticks: rates need two stats samples
    assert "latency p50" in viewer.stats_label.text() and "raw" in viewer.stats_label.text()
    shown = viewer.confidence_label.text()
    assert shown.startswith("SR confidence ") and 0.0 <= float(shown.split()[2]) <= 1.0
    shots = [tmp_path / "viewer.png"]
    if os.environ.get("SRLIVE_SCREENSHOT_DIR"):
        shots.append(Path(os.environ["SRLIVE_SCREENSHOT_DIR"]) / "viewer.png")
    for shot in shots:
        viewer.snapshot(shot)
    img = QtGui.QImage(str(shots[0]))
    assert img.width() >= 1200 and img.height() >= 600
    colors = {
        img.pixel(x, y)
        for x in range(0, img.width(), img.width() // 100)
        for y in range(0, img.height(), img.height() // 60)
    }
    assert len(colors) > 100  # images, plots and controls, not a blank window

    c.stop_button.click()
    qtbot.waitUntil(lambda: not session.running, timeout=30_000)
    qtbot.waitUntil(lambda: c.start_button.isEnabled(), timeout=2000)
    assert session.engine.stats.frames_dropped == 0  # Stop ends at a set boundary
    assert not any(scope.laser_is_on(line) for line in scope.profile.laser_lines)
    # the store kept every raw frame; the plots saw real signal and bleaching
    summary = session.close()
    assert summary.raw_frames_stored == summary.raw_frames_acquired > 0
    panel = viewer.optimizer_panel
    signal = np.array(panel.signal.y_left)
    surviving = np.array(panel.signal.y_right)
    assert np.all(signal[np.isfinite(signal)] > 0)
    assert 0.5 < np.nanmin(surviving) <= 1.0 + 1e-6
    assert set(np.array(panel.choices.y_left)) <= {12.0, 20.0}


def test_device_errors_reach_the_status_line(qtbot, live) -> None:
    viewer, session = live
    session.engine.dose_budget_mj = 1e-4  # less than one set: the engine refuses to light it
    viewer.controls.start_button.click()
    qtbot.waitUntil(lambda: "budget" in viewer.status_label.text(), timeout=20_000)
    assert "d03030" in viewer.status_label.styleSheet()
    qtbot.waitUntil(lambda: viewer.controls.start_button.isEnabled(), timeout=5000)
    assert not math.isnan(session.settings.exposure_ms)
    assert session.error and "budget" in session.error
    time.sleep(0)  # nothing acquired, nothing dropped
    assert session.engine.stats.frames_acquired == 0


def test_srlive_run_window_stays_open_for_snap_and_closes_cleanly(qtbot, tmp_path) -> None:
    from qtpy import QtCore, QtWidgets

    from srlive.cli.run import _run_with_window
    from srlive.pipeline.run_live import RunSettings

    settings = RunSettings(
        modality="sim9",
        frames=3,
        out=tmp_path / "w.zarr",
        properties=[("SimHub", "FrameSize", "128"), ("SimHub", "Motion", "Off")],
    )
    steps: list[str] = []

    def drive() -> None:  # what a user does: wait for the run, Snap once, close the window
        viewers = [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, LiveViewer)]
        viewer = next((v for v in viewers if v.isVisible() and v.controls), None)
        if viewer is not None and viewer.controls.snap_button.isEnabled():
            status = viewer.status_label.text()
            if not steps and status == "3 sets acquired":
                steps.append("snap")
                viewer.controls.snap_button.click()
            elif steps and status == "1 set acquired":
                steps.append("close")
                viewer.close()
                return
        QtCore.QTimer.singleShot(100, drive)

    QtCore.QTimer.singleShot(100, drive)
    summary = _run_with_window(settings, stay_open=True)
    assert steps == ["snap", "close"]
    assert summary.raw_frames_acquired == summary.raw_frames_stored == 4 * 9
    assert summary.sr_images + summary.sr_skipped == 4 and not summary.interrupted
    assert summary.lasers_on_at_end == [] and summary.latency_ms["n"] >= 1


def test_srlive_run_smlm_window_shows_the_growing_rendering_and_localisation_figures(
    qtbot, tmp_path
) -> None:
    from qtpy import QtCore, QtWidgets

    from srlive.cli.run import _run_with_window
    from srlive.pipeline.run_live import RunSettings

    settings = RunSettings(
        modality="smlm",
        line=640,
        power_mw=140.0,
        frames=3,
        set_frames=50,
        activation_mw=0.5,
        out=tmp_path / "s.zarr",
        properties=[("SimHub", "FrameSize", "64"), ("SimHub", "Motion", "Off")],
    )
    seen: dict[str, object] = {}

    def drive() -> None:  # wait for the run's last rendering, read the window, close it
        viewers = [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, LiveViewer)]
        viewer = next((v for v in viewers if v.isVisible()), None)
        if viewer is not None and "(set 2)" in viewer.confidence_label.text():
            seen["label"] = viewer.confidence_label.text()
            seen["sr"] = np.array(viewer.sr_item.image)
            viewer.close()
            return
        QtCore.QTimer.singleShot(100, drive)

    QtCore.QTimer.singleShot(100, drive)
    summary = _run_with_window(settings, stay_open=True)
    label = str(seen["label"])
    assert "localisations" in label and "/µm² per frame" in label and "nm" in label
    count = int(label.split(" localisations")[0].replace(",", ""))
    assert count == summary.smlm["localizations"] > 50
    sr = seen["sr"]
    assert sr.shape == (64 * 6, 64 * 6) and sr.sum() == pytest.approx(count, rel=0.03)
    assert summary.sr_images == 3 and summary.lasers_on_at_end == []
