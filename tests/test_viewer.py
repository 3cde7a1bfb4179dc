"""Tests of the live raw | SR viewer (pytest-qt, offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any QApplication exists

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from qtpy import QtCore, QtGui

from srlive.viewer import LiveViewer, display_available, format_info, run_with_viewer

RAW_NM, SR_NM = 100.0, 50.0  # SR panel: 2x finer pixels over the same field of view
H, W = 40, 60


def images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.integers(100, 4000, (H, W), dtype=np.uint16)
    sr = rng.random((2 * H, 2 * W), dtype=np.float32)
    return raw, sr


@pytest.fixture
def viewer(qtbot) -> LiveViewer:
    v = LiveViewer(raw_pixel_nm=RAW_NM, sr_pixel_nm=SR_NM, title="test", display_hz=100.0)
    qtbot.addWidget(v)
    v.show()
    qtbot.waitExposed(v)
    return v


def test_submit_from_thread_shows_images(qtbot, viewer: LiveViewer) -> None:
    raw, sr = images()
    info = {"frame": 7, "sets": 2, "sr_fps": 12.5, "latency_ms": 41.0, "status": "running"}
    th = threading.Thread(target=viewer.submit, args=(raw, sr, info))
    th.start()
    th.join()
    qtbot.waitUntil(lambda: viewer.displayed >= 1, timeout=2000)
    np.testing.assert_array_equal(viewer.raw_item.image, raw)
    np.testing.assert_array_equal(viewer.sr_item.image, sr)
    text = viewer.status_label.text()
    for part in ("frame 7", "sets 2", "SR fps 12.5", "latency ms 41.0", "running"):
        assert part in text
    # auto levels on the first image, then the user's levels are kept
    lo, hi = viewer.raw_item.getLevels()
    assert lo == pytest.approx(raw.min()) and hi == pytest.approx(raw.max())
    viewer.raw_item.setLevels([500, 600])
    raw2, sr2 = images(1)
    viewer.submit(raw2, sr2, {"frame": 8})
    qtbot.waitUntil(lambda: viewer.displayed >= 2, timeout=2000)
    np.testing.assert_array_equal(viewer.raw_item.image, raw2)
    assert list(viewer.raw_item.getLevels()) == [500, 600]


def test_latest_wins_and_widefield_sum(qtbot, viewer: LiveViewer) -> None:
    viewer.timer.stop()
    sets = [np.full((3, 3, H, W), i, np.uint16) for i in range(5)]
    for i, s in enumerate(sets):
        viewer.submit(s, None, {"frame": i})
    assert viewer.display_dropped == 4
    assert viewer.refresh() and not viewer.refresh()
    np.testing.assert_array_equal(viewer.raw_item.image, np.full((H, W), 4 * 9, np.float32))
    assert viewer.sr_item.image is None  # no SR submitted yet
    viewer.mode_box.setCurrentIndex(1)  # last frame of the set
    last = sets[0].copy()
    last[2, 2] = 99
    viewer.submit(last, None, {})
    viewer.refresh()
    np.testing.assert_array_equal(viewer.raw_item.image, last[2, 2])


def test_zoom_is_linked_in_physical_units(qtbot, viewer: LiveViewer) -> None:
    raw, sr = images()
    viewer.submit(raw, sr, {})
    qtbot.waitUntil(lambda: viewer.displayed >= 1, timeout=2000)
    # both images cover the same field of view in µm: 60 x 40 px at 0.1 µm = 6 x 4 µm
    for item in (viewer.raw_item, viewer.sr_item):
        rect = item.mapRectToParent(item.boundingRect())
        assert (rect.x(), rect.y()) == pytest.approx((0.0, 0.0))
        assert (rect.width(), rect.height()) == pytest.approx((6.0, 4.0))

    def same_range() -> bool:
        (rx, ry), (sx, sy) = viewer.raw_view.viewRange(), viewer.sr_view.viewRange()
        return bool(np.allclose(rx, sx, atol=1e-6) and np.allclose(ry, sy, atol=1e-6))

    viewer.raw_view.setRange(xRange=(1.0, 3.0), yRange=(1.0, 2.5), padding=0)
    qtbot.waitUntil(same_range, timeout=2000)
    (x0, x1), _ = viewer.sr_view.viewRange()
    assert x0 <= 1.0 + 1e-6 and x1 >= 3.0 - 1e-6 and x1 - x0 < 4.0  # zoomed in, in µm
    # the SR panel shows the same µm range with twice the pixels
    sr_px = (x1 - x0) / (SR_NM / 1000)
    raw_px = (x1 - x0) / (RAW_NM / 1000)
    assert sr_px == pytest.approx(2 * raw_px)
    # and the link works the other way round
    viewer.sr_view.setRange(xRange=(3.0, 4.0), yRange=(2.0, 3.0), padding=0)
    qtbot.waitUntil(same_range, timeout=2000)
    (x0, x1), _ = viewer.raw_view.viewRange()
    assert x0 <= 3.0 + 1e-6 and x1 >= 4.0 - 1e-6 and x1 - x0 < 2.0


def test_a_finer_sr_grid_covers_the_same_field_of_view(qtbot, viewer: LiveViewer) -> None:
    """eSRRF at m = 4: the SR panel takes the grid of the image it is given."""
    raw, _ = images()
    viewer.submit(raw, np.ones((4 * H, 4 * W), np.float32), {})
    qtbot.waitUntil(lambda: viewer.displayed >= 1, timeout=2000)
    rect = viewer.sr_item.mapRectToParent(viewer.sr_item.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((6.0, 4.0))


def test_last_frame_mode_shows_a_copy_not_the_set_memory(viewer: LiveViewer) -> None:
    """The set's memory (a ring slot) is reused once the preview returns."""
    frames = np.arange(3 * H * W, dtype=np.uint16).reshape(3, H, W)
    viewer.mode_box.setCurrentIndex(1)
    shown = viewer.raw_display_image(frames)
    assert not np.shares_memory(shown, frames)
    np.testing.assert_array_equal(shown, frames[-1])


def test_stop_button_emits_stop_requested(qtbot, viewer: LiveViewer) -> None:
    with qtbot.waitSignal(viewer.stop_requested, timeout=1000):
        qtbot.mouseClick(viewer.stop_button, QtCore.Qt.MouseButton.LeftButton)
    assert not viewer.stop_button.isEnabled()


def test_closing_the_window_requests_stop(qtbot) -> None:
    v = LiveViewer(raw_pixel_nm=RAW_NM, sr_pixel_nm=SR_NM)
    qtbot.addWidget(v)
    v.show()
    with qtbot.waitSignal(v.stop_requested, timeout=1000):
        v.close()


def test_snapshot_png_is_not_blank(qtbot, viewer: LiveViewer, tmp_path: Path) -> None:
    raw, sr = images()
    viewer.submit(raw, sr, {"frame": 1, "status": "snap"})
    out = viewer.snapshot(tmp_path / "shots" / "live.png")
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = QtGui.QImage(str(out))
    assert not img.isNull() and img.width() > 100 and img.height() > 100
    colors = {
        img.pixel(x, y)
        for x in range(0, img.width(), max(1, img.width() // 80))
        for y in range(0, img.height(), max(1, img.height() // 60))
    }
    assert len(colors) > 50  # random images in both panels, not a blank window


def test_run_with_viewer_runs_worker_and_returns(qtbot) -> None:
    seen: dict[str, object] = {}

    def worker(v: LiveViewer, stop: threading.Event) -> None:
        raw, sr = images()
        for i in range(10):
            v.submit(raw + i, sr, {"frame": i})
            time.sleep(0.01)
        seen["stop_set"] = stop.is_set()
        seen["viewer"] = v

    run_with_viewer(worker, raw_pixel_nm=RAW_NM, sr_pixel_nm=SR_NM, title="run")
    assert seen["stop_set"] is False
    v = seen["viewer"]
    assert isinstance(v, LiveViewer) and v.submitted == 10
    np.testing.assert_array_equal(v.raw_item.image, images()[0] + 9)


def test_run_with_viewer_stop_and_exception(qtbot) -> None:
    def press_stop() -> None:
        for w in QtCore.QCoreApplication.instance().topLevelWidgets():
            if isinstance(w, LiveViewer) and w.isVisible():
                w.stop_button.click()

    def until_stopped(v: LiveViewer, stop: threading.Event) -> None:
        assert stop.wait(5.0), "stop was never requested"
        raise ValueError("worker failed after stop")

    QtCore.QTimer.singleShot(100, press_stop)
    with pytest.raises(ValueError, match="after stop"):
        run_with_viewer(until_stopped, raw_pixel_nm=RAW_NM, sr_pixel_nm=SR_NM, title="stop")


def test_format_info() -> None:
    text = format_info({"status": "ok", "dropped": 3, "method": "wiener", "extra": 1.234})
    assert text == "dropped 3  |  method wiener  |  extra=1.2  |  ok"


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"DISPLAY": ":0"}, True),
        ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True),
        ("linux", {}, False),
        ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, False),
        ("darwin", {}, True),
        ("win32", {}, True),
    ],
)
def test_display_available(monkeypatch, platform: str, env: dict[str, str], expected: bool) -> None:
    for key in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("sys.platform", platform)
    assert display_available() is expected
