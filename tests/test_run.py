"""The main job end to end on the simulated microscope, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zarr

from srlive.cli import main
from srlive.pipeline.run_live import RunSettings, run_live
from srlive.storage import open_store

SMALL = ["--set", "SimHub.FrameSize=128", "--set", "SimHub.Motion=Off"]


def _srlive(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DISPLAY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "srlive", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_run_headless_json_writes_a_store_that_opens(tmp_path):
    out = tmp_path / "run.zarr"
    proc = _srlive("run", "--headless", "--frames", "5", "--json", "--out", str(out), *SMALL)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout[stdout.index("{") :])
    # latest wins: a set the reconstruction could not keep up with is skipped, and recorded
    assert summary["sr_images"] + summary["sr_skipped"] == 5
    assert summary["sr_images"] >= 1  # the last set is always reconstructed
    assert summary["raw_frames_acquired"] == 45
    assert summary["raw_frames_stored"] == 45
    assert summary["raw_frames_dropped"] == 0
    assert summary["output"] == str(out)
    assert summary["sequencing"] == "hardware"
    assert summary["lasers_on_at_end"] == []
    root = zarr.open_group(str(out), mode="r")
    series = summary["series"]["sim9"]  # one series per modality: <out>/sim9
    assert series["path"] == str(out / "sim9") and summary["modality"] == "sim9"
    raw = root[series["raw_path"]]
    sr = root[series["sr_path"]]
    assert raw.shape == (5, 9, 128, 128)
    assert sr.shape == (5, 256, 256)
    status = open_store(out).sr_status()
    assert sorted(status) == [0, 1, 2, 3, 4] and status[4] == "reconstructed"
    for t, state in status.items():
        image = sr[t]
        if state == "reconstructed":
            assert np.isfinite(image).all() and image.std() > 0
        else:
            assert np.isnan(image).all()
    assert list(status.values()).count("skipped") == summary["sr_skipped"]
    assert root.attrs["srlive"]["complete"] is True
    # the pattern estimate and its verdict per angle are stored with every SR image
    pattern = summary["sim_parameters"]["pattern"]
    assert [entry["found"] for entry in pattern] == [True, True, True]
    assert [round(entry["angle_deg"]) % 180 for entry in pattern] == [0, 60, 120]
    assert all(abs(entry["period_nm"] - 195.0) < 2.0 for entry in pattern)
    table = root["sim9/tables/sr"]
    rows = [status[int(t)] == "reconstructed" for t in table["t"][:]]  # rows in written order
    for a in range(3):
        assert (table[f"pattern_a{a}_found"][:][np.array(rows)] == 1).all()


def test_widefield_run(tmp_path):
    out = tmp_path / "wf.zarr"
    code = main(
        ["run", "--headless", "--modality", "widefield", "--frames", "4", "--out", str(out), *SMALL]
    )
    assert code == 0
    raw = zarr.open_group(str(out), mode="r")["widefield/raw/0"]
    assert raw.shape == (4, 1, 128, 128)
    assert raw[:].mean() > 110  # lit: above the 100 ADU offset


def test_set_applies_any_property_before_acquiring(tmp_path):
    out = tmp_path / "dark.zarr"
    code = main(
        [
            "run",
            "--headless",
            "--modality",
            "widefield",
            "--frames",
            "2",
            "--out",
            str(out),
            "--set",
            "SimHub.BrightnessPhotonsPerMWms=0",
            *SMALL,
        ]
    )
    assert code == 0
    raw = zarr.open_group(str(out), mode="r")["widefield/raw/0"][:]
    assert abs(raw.mean() - 100) < 2  # no fluorescence: offset and read noise only


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--power-mw", "900"], "outside the profile limit"),
        (["--exposure-ms", "0.001"], "exposure"),
        (["--profile", "no_such_profile"], "unknown profile"),
        (["--modality", "smlm9"], "unknown modality"),
        (["--set", "Nope.Power=1"], "no device 'Nope'"),
        (["--set", "SimHub.Sample=teapot"], "teapot"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, needle):
    proc = _srlive("run", "--headless", "--frames", "1", "--out", str(tmp_path / "x.zarr"), *args)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and "it/s" not in line and "set/s" not in line and "%" not in line
    ]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("srlive: error:") and needle in lines[0]


def test_ctrl_c_stops_cleanly_and_leaves_a_readable_store(tmp_path):
    out = tmp_path / "interrupted.zarr"
    proc = _srlive("run", "--headless", "--frames", "500", "--json", "--out", str(out), *SMALL)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            if zarr.open_group(str(out / "sim9"), mode="r").attrs["srlive"]["frames_flushed"] >= 18:
                break
        except Exception:
            continue
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout[stdout.index("{") :])
    assert summary["interrupted"] is True
    assert summary["lasers_on_at_end"] == []
    root = zarr.open_group(str(out), mode="r")
    n = summary["raw_frames_stored"] // 9
    assert n >= 2
    raw = root["sim9/raw/0"][:n]
    assert (raw.reshape(n * 9, -1).mean(axis=1) > 100).all()


def test_stop_event_in_process(tmp_path):
    stop = threading.Event()
    seen = []

    def on_update(raw, sr, info):
        seen.append(info["t"])
        if len(seen) == 2:
            stop.set()

    summary = run_live(
        RunSettings(
            frames=100,
            out=tmp_path / "s.zarr",
            properties=[("SimHub", "FrameSize", "128"), ("SimHub", "Motion", "Off")],
        ),
        on_update=on_update,
        stop=stop,
    )
    assert summary.interrupted
    assert len(seen) >= 2 and summary.sr_images >= 2
    assert summary.raw_frames_stored == summary.raw_frames_acquired - summary.raw_frames_dropped
    assert summary.raw_frames_dropped <= 8  # at most the set in progress when stop came
    assert summary.lasers_on_at_end == []
