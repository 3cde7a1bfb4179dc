"""`srlive view`: browsing saved run and protocol stores (pytest-qt, offscreen, real zarr)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from srlive.acquisition.writer import create_root_group
from srlive.cli import main
from srlive.storage import AcquisitionStore
from srlive.viewer.browse import StoreBrowser, find_series

H = W = 32


def _store(path: Path, n_sets: int, modality: str, sr: bool, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    a, p = (3, 1) if modality == "sim3" else (1, 1)
    store = AcquisitionStore.create(
        path,
        frame_shape=(H, W),
        pixel_nm=65.0,
        n_angles=a,
        n_phases=p,
        sr_shape=(2 * H, 2 * W) if sr else None,
        sr_pixel_nm=32.5 if sr else None,
        laser_lines=[488],
        profile={},
        run={"modality": modality},
        sr_method="dl-sim3" if sr else None,
    )
    sets = []
    for t in range(n_sets):
        frames = rng.integers(100, 3000, (a * p, H, W), dtype=np.uint16)
        store.write_set(t, frames, [])
        sets.append(frames)
        if sr and t % 2 == 0:
            image = rng.random((2 * H, 2 * W), dtype=np.float32)
            store.write_sr(t, image, {"time_s": t, "recon_ms": 42.0, "confidence": 0.37})
        elif sr:
            store.write_sr_skipped(t, {"time_s": t})
    store.close()
    return sets


def test_browse_a_run_store_with_skipped_sets_and_a_sub_series(qtbot, tmp_path) -> None:
    root = tmp_path / "run.zarr"
    sets = _store(root, 4, "sim3", sr=True, seed=1)
    _store(root / "widefield", 3, "widefield", sr=False, seed=2)
    assert list(find_series(root)) == ["run", "widefield"]
    browser = StoreBrowser(root)
    qtbot.addWidget(browser)
    assert browser.slider.maximum() == 3
    browser.slider.setValue(2)
    np.testing.assert_array_equal(browser.raw_panel.item.image, sets[2].sum(0, np.float32))
    assert browser.sr_panel.item.image is not None
    assert "reconstructed, confidence 0.37, 42 ms" in browser.info_label.text()
    browser.slider.setValue(1)
    assert browser.sr_state(1) == "skipped" and browser.sr_panel.item.image is None
    assert "skipped" in browser.sr_panel.plot.titleLabel.text
    assert "2 of 4 sets skipped" in browser.info_label.text()
    browser.series_box.setCurrentText("widefield")
    assert browser.slider.maximum() == 2 and browser.reader.sr is None
    assert "no SR" in browser.sr_panel.plot.titleLabel.text


def test_browse_a_protocol_store_and_cli(qtbot, tmp_path, capsys) -> None:
    root = tmp_path / "protocol.zarr"
    create_root_group(root, {"layout": "series", "series": ["p0_c488", "p1_c488"]}, False).release()
    _store(root / "p0_c488", 2, "sim3", sr=True, seed=3)
    _store(root / "p1_c488", 2, "sim3", sr=True, seed=4)
    assert list(find_series(root)) == ["p0_c488", "p1_c488"]
    png = tmp_path / "shot.png"
    assert main(["view", str(root), "--series", "p1_c488", "--snapshot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in (tmp_path / "missing.zarr", tmp_path):
        assert main(["view", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("srlive: error:")
    assert main(["view", str(root), "--series", "nope", "--snapshot", str(png)]) == 2
