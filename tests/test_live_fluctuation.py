"""Live fluctuation SR: rolling eSRRF/SOFI windows of the burst stream, through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srlive.cli import main
from srlive.pipeline.run_live import _blinking_sample
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.recon.fluctuation.method import (
    FluctuationSettings,
    RollingWindow,
    fluctuation_settings,
)
from srlive.recon.fluctuation.options import HELP_DEFAULTS
from srlive.storage.omezarr import open_store


def _session(scope, path: Path, settings: FluctuationSettings, **kw) -> LiveSession:
    scope.core.setProperty("SimHub", "Fluctuation", "On")
    live = LiveSettings("fluctuation", 488, 2.0, {488: 20.0})
    return LiveSession(
        scope,
        live,
        path,
        fluctuation=settings,
        reconstructions={"fluctuation": settings.method},
        **kw,
    )


def _window_of(store, t: int, settings: FluctuationSettings) -> np.ndarray:
    first = t - settings.sets_per_window + 1
    raw = np.asarray(store.raw[first : t + 1])  # (sets, step, H, W)
    return raw.reshape(-1, *raw.shape[-2:])


@pytest.mark.parametrize("inference", ["process", "thread"])
def test_windows_are_the_last_sets_in_order_and_every_frame_is_stored(
    scope, tmp_path, inference
) -> None:
    settings = fluctuation_settings("esrrf", window=12, step=4, magnification=2)
    session = _session(scope, tmp_path / "f.zarr", settings, inference=inference, threads=1)
    ring = session.pipeline.ring
    try:
        session.start(9)
        assert session.wait(120)
    finally:
        summary = session.close()
    assert ring.free_count() == ring.n_slots  # no window kept a slot after the run
    assert summary.raw_frames_acquired == summary.raw_frames_stored == 36
    assert summary.sr_images + summary.sr_skipped == 9
    assert summary.sr_skipped - session.pipeline.worker.skipped == 2  # filling the window
    store = open_store(tmp_path / "f.zarr")
    status = store.sr_status()
    assert status[0] == status[1] == "skipped"  # no full window before the third set
    assert status[8] == "reconstructed"  # the last window is always drained
    assert store.sr.shape[-2:] == (2 * 128, 2 * 128)
    rows = {int(t): i for i, t in enumerate(store.sr_table["t"])}
    for t, state in status.items():
        if state != "reconstructed":
            continue
        expected = settings.reconstruct(_window_of(store, t, settings), scope.camera_offset_adu)
        np.testing.assert_allclose(store.read_sr(t), expected, rtol=1e-5, atol=1e-6)
        row = rows[t]
        assert store.sr_table["window_first_t"][row] == t - 2
        assert store.sr_table["window_frames"][row] == 12
    assert store.attrs["run"]["fluctuation"] == settings.parameters()


def test_a_second_run_starts_a_new_window(scope, tmp_path) -> None:
    settings = fluctuation_settings("sofi2", window=6, step=3)
    session = _session(scope, tmp_path / "f.zarr", settings, inference="thread")
    worker = session.pipeline.worker
    try:
        for _ in range(2):
            session.start(3)
            assert session.wait(60)
    finally:
        summary = session.close()
    status = open_store(tmp_path / "f.zarr").sr_status()
    assert status[0] == status[3] == "skipped"
    # sets 0 and 3 open a window: the gap between the runs is not bridged (the other skips
    # are latest-wins skips of the worker)
    assert summary.sr_skipped - worker.skipped == 2


def test_a_fluctuation_run_makes_the_simulated_dyes_blink_unless_told_not_to(scope) -> None:
    core = scope.core
    assert core.getProperty("SimHub", "Fluctuation") == "Off"
    _blinking_sample(scope, [("SimHub", "Fluctuation", "Off")])  # the user's --set wins
    assert core.getProperty("SimHub", "Fluctuation") == "Off"
    _blinking_sample(scope, [])
    assert core.getProperty("SimHub", "Fluctuation") == "On"


def test_rolling_window_and_settings_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="multiple of the step"):
        fluctuation_settings("esrrf", window=10, step=3)
    with pytest.raises(ValueError, match="magnification"):
        fluctuation_settings("esrrf", magnification=0)
    with pytest.raises(ValueError, match="method"):
        fluctuation_settings("srrf")
    window = RollingWindow(fluctuation_settings("sofi2", window=4, step=2))
    frames = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3)
    assert window.add(frames) is None
    burst = window.add(frames + 100)
    assert burst is not None and burst.shape == (4, 3, 3) and burst[0, 0, 0] == 0
    assert window.add(frames + 200)[0, 0, 0] == 100  # the oldest set left
    with pytest.raises(ValueError, match="step"):
        window.add(frames[:1])
    defaults = FluctuationSettings()
    assert {k: getattr(defaults, k) for k in HELP_DEFAULTS} == HELP_DEFAULTS


def test_run_command_fluctuation(tmp_path, capsys) -> None:
    out = tmp_path / "run.zarr"
    small = ["--set", "SimHub.FrameSize=64", "--set", "SimHub.Motion=Off", "--headless"]
    code = main(
        [
            "run",
            "--modality",
            "fluctuation",
            "--frames",
            "4",
            "--window",
            "6",
            "--step",
            "3",
            "--magnification",
            "2",
            "--out",
            str(out),
            "--json",
            *small,
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fluctuation"]["window"] == 6 and summary["fluctuation"]["step"] == 3
    assert summary["raw_frames_stored"] == 12 and summary["sr_images"] >= 1
    store = open_store(out)
    assert store.raw.shape[:2] == (4, 3) and store.sr.shape[-1] == 128
    assert store.attrs["run"]["fluctuation"]["method"] == "esrrf"

    assert main(["run", "--modality", "sim9", "--window", "6", "--headless"]) != 0
    assert "only for --modality fluctuation" in capsys.readouterr().err
    bad = ["run", "--modality", "fluctuation", "--window", "10", "--step", "4", "--headless"]
    assert main([*bad, "--out", str(tmp_path / "bad.zarr")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "multiple of the step" in err[0]
    assert not (tmp_path / "bad.zarr").exists()
