"""The acquisition engine and protocols on the simulated microscope, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

import srlive.pipeline.run_protocol as acquire_module
from srlive.acquisition.engine import DoseBudgetExceeded, Engine, SetPlan
from srlive.acquisition.modalities import MODALITIES, get_modality, slm_images
from srlive.acquisition.protocol import ProtocolError
from srlive.pipeline.run_protocol import acquire
from srlive.recon.offline_smlm import read_localizations
from srlive.storage.omezarr import open_store

SMALL = [("SimHub", "FrameSize", "64"), ("SimHub", "Motion", "Off")]
ROOT = Path(__file__).resolve().parent.parent


def _protocol(tmp_path: Path, data: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


MODALITY_CASES = {
    "widefield": ({"modality": "widefield", "power_mw": 10}, "488", 1, (1, 1)),
    "sim9": ({"modality": "sim9", "power_mw": 20}, "488", 9, (3, 3)),
    "sim3": ({"modality": "sim3", "power_mw": 5}, "488", 3, (3, 1)),
    "sim15": ({"modality": "sim15", "power_mw": 20}, "488", 15, (3, 5)),
    "fluctuation": ({"modality": "fluctuation", "power_mw": 20, "frames": 20}, "488", 20, (1, 20)),
    "smlm": (
        {"modality": "smlm", "power_mw": 140, "exposure_ms": 5, "frames": 20},
        "640",
        20,
        (1, 20),
    ),
}


@pytest.mark.parametrize("name", list(MODALITY_CASES))
def test_each_modality_end_to_end(tmp_path, name):
    settings, config, frames, layout = MODALITY_CASES[name]
    path = _protocol(
        tmp_path,
        {
            "mda": {"time_plan": {"interval": 0, "loops": 2}, "channels": [{"config": config}]},
            "srlive": {"channels": {config: settings}},
        },
    )
    summary = acquire(path, out=tmp_path / "out.zarr", properties=SMALL)
    assert summary.complete and summary.lasers_on_at_end == []
    assert summary.raw_frames_acquired == summary.raw_frames_stored == 2 * frames
    (series,) = summary.series
    reader = open_store(tmp_path / "out.zarr" / series)
    assert reader.n_sets == 2 and (reader.n_angles, reader.n_phases) == layout
    raw = reader.read_sets()
    assert raw.shape == (2, *layout, 64, 64)
    slm = reader.frames["slm_pattern"]
    if MODALITIES[name].structured:
        assert list(slm[:frames]) == list(range(frames))
    else:
        assert (slm == -1).all()
    if name == "sim9":
        assert reader.sr is not None and np.isfinite(reader.read_sr(1)).all()
    if name == "fluctuation":  # every burst is one eSRRF window (4x finer grid)
        assert reader.sr is not None and reader.sr.shape[-2:] == (256, 256)
        assert reader.sr_status() == {0: "reconstructed", 1: "reconstructed"}
    if name == "smlm":  # sparse blinking: bright spots on the background, localised per set
        frame = raw[0, 0, 0].astype(float) - 100
        assert frame.max() > 4 * max(np.median(frame), 1.0)
        assert reader.sr_status() == {0: "reconstructed", 1: "reconstructed"}
        locs = read_localizations(tmp_path / "out.zarr" / series)
        assert len(locs) > 20 and set(np.unique(locs["frame"])) <= set(range(40))


def test_protocol_2_positions_3_timepoints_2_channels_exact(tmp_path):
    summary = acquire(
        ROOT / "protocols" / "multiposition_wf_sim.yaml", out=tmp_path / "mp.zarr", properties=SMALL
    )
    assert summary.sets_planned == summary.sets_completed == 12
    assert summary.raw_frames_acquired == summary.raw_frames_stored == 3 * 2 * (9 + 1)
    assert set(summary.series) == {"p0_c488", "p0_c561", "p1_c488", "p1_c561"}
    for name, info in summary.series.items():
        reader = open_store(tmp_path / "mp.zarr" / name)
        per_set = 9 if name.endswith("488") else 1
        assert info.frames == reader.n_frames == 3 * per_set
        table = reader.frames
        assert list(table["t"]) == [t for t in range(3) for _ in range(per_set)]
        expected_x = 0.0 if name.startswith("p0") else 40.0
        assert np.allclose(table["x_um"], expected_x)
        line = 488 if name.endswith("488") else 561
        other = 561 if line == 488 else 488
        assert np.allclose(table[f"power_mw_{line}"], 20.0 if line == 488 else 10.0)
        assert np.allclose(table[f"power_mw_{other}"], 0.0)
        assert np.allclose(table["exposure_ms"], 10.0 if line == 488 else 20.0)
        assert np.all(np.diff(table["time_s"]) > 0)
        assert (reader.sr is not None) == (line == 488)
    root = zarr.open_group(str(tmp_path / "mp.zarr"), mode="r")
    assert root.attrs["srlive"]["complete"] is True
    assert root.attrs["srlive"]["protocol"]["mda"]["time_plan"]["loops"] == 3


def test_a_plain_useq_schema_file_is_a_protocol(tmp_path):
    """What pymmcore-plus users already have: an MDASequence alone, srlive's fields default."""
    import useq

    sequence = useq.MDASequence(
        stage_positions=[(0.0, 0.0), (40.0, 0.0)],
        time_plan={"interval": 0, "loops": 3},
        channels=["488"],
    )
    path = tmp_path / "plain.json"
    path.write_text(sequence.model_dump_json(exclude_unset=True))
    yaml_path = _protocol(tmp_path, json.loads(path.read_text()), "plain.yaml")
    for source in (path, yaml_path):
        out = tmp_path / f"{source.suffix[1:]}.zarr"
        summary = acquire(source, out=out, properties=SMALL)
        assert summary.complete
        assert summary.sets_planned == summary.sets_completed == 6
        assert set(summary.series) == {"p0_c488", "p1_c488"}
        assert summary.raw_frames_stored == 6 * 9  # the default modality: sim9


def test_a_protocol_reconstructs_every_set_off_the_acquisition_thread(tmp_path):
    """Protocols run through the same runner as live runs: engine -> ring -> writer thread and
    inference worker; every set is reconstructed (none skipped), never on the acquiring one."""
    path = _protocol(
        tmp_path,
        {
            "mda": {"time_plan": {"interval": 0, "loops": 4}, "channels": [{"config": "488"}]},
            "srlive": {"channels": {"488": {"modality": "sim9", "exposure_ms": 1}}},
        },
    )
    acquiring = threading.current_thread()
    seen: list[tuple[int, str]] = []
    summary = acquire(
        path,
        out=tmp_path / "off.zarr",
        properties=SMALL,
        on_result=lambda r: seen.append((r.t, threading.current_thread().name)),
    )
    assert summary.complete and summary.sr_images == 4 and summary.sr_skipped == 0
    assert sorted(t for t, _ in seen) == [0, 1, 2, 3]
    threads = {name for _, name in seen}
    assert acquiring.name not in threads and threads == {"srlive-inference"}
    assert summary.pipeline["inference"] == "process"  # the model ran in a child process
    reader = open_store(tmp_path / "off.zarr" / "p0_c488")
    assert reader.sr_status() == {t: "reconstructed" for t in range(4)}


def test_store_validates_as_ome_zarr_05(tmp_path):
    yaozarrs = pytest.importorskip("yaozarrs")
    image_mod = pytest.importorskip("ome_zarr_models.v05.image")
    acquire(
        ROOT / "protocols" / "multiposition_wf_sim.yaml", out=tmp_path / "v.zarr", properties=SMALL
    )
    for image in ("p0_c488/raw", "p0_c488/sr", "p1_c561/raw"):
        yaozarrs.validate_zarr_store(str(tmp_path / "v.zarr" / image))
        model = image_mod.Image.from_zarr(zarr.open_group(tmp_path / "v.zarr" / image, mode="r"))
        assert model.attributes.ome.version == "0.5"


def test_invalid_protocol_touches_no_device(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a device was touched")

    monkeypatch.setattr(acquire_module, "connect", forbidden)
    cases = [
        (
            {
                "mda": {"channels": [{"config": "488"}]},
                "srlive": {"channels": {"488": {"power_mw": 900}}},
            },
            "outside the profile limit",
        ),
        ({"mda": {"channels": [{"config": "405"}]}}, "405"),
        ({"mda": {"time_plan": {"interval": -1, "loops": "x"}}}, "time_plan"),
        (
            {
                "mda": {"channels": [{"config": "488"}]},
                "srlive": {"channels": {"488": {"modality": "sted"}}},
            },
            "unknown modality",
        ),
        (
            {
                "mda": {"channels": [{"config": "488"}]},
                "srlive": {"channels": {"488": {"reconstruction": "srrf"}}},
            },
            "unknown reconstruction method 'srrf'",
        ),
        (
            {
                "mda": {"channels": [{"config": "488"}]},
                "srlive": {
                    "channels": {"488": {"modality": "sim9", "reconstruction": "localization"}}
                },
            },
            "localization reconstructs uniform-light bursts",
        ),
        ({"srlive": {}}, "'mda' section"),
    ]
    for i, (data, needle) in enumerate(cases):
        path = _protocol(tmp_path, data, f"bad{i}.yaml")
        with pytest.raises(ProtocolError) as info:
            acquire(path, out=tmp_path / f"bad{i}.zarr")
        assert "\n" not in str(info.value) and needle in str(info.value)
        assert not (tmp_path / f"bad{i}.zarr").exists()


def test_cli_invalid_inputs_one_line_nonzero(tmp_path):
    bad = _protocol(
        tmp_path,
        {
            "mda": {"channels": [{"config": "488"}]},
            "srlive": {"channels": {"488": {"power_mw": 900}}},
        },
    )
    for args in (
        ["acquire", str(bad)],
        ["acquire", str(tmp_path / "none.yaml")],
        ["acquire", str(ROOT / "protocols" / "smlm_burst.yaml"), "--profile", "nope"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "srlive", *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("srlive: error:"), proc.stderr


def _plans(scope, n_sets: int, power: float = 20.0) -> list[SetPlan]:
    modality = get_modality("sim9")
    images = tuple(slm_images(scope.profile, modality, 488, scope.slm_shape))
    return [
        SetPlan(
            index=t,
            t=t,
            modality=modality,
            line=488,
            power_mw=power,
            exposure_ms=2.0,
            slm_images=images,
            n_frames=9,
        )
        for t in range(n_sets)
    ]


def test_lasers_off_and_slm_blank_after_an_exception_mid_run(scope):
    engine = Engine(scope)
    seen = []

    def explode(record):
        seen.append(record)
        assert scope.laser_is_on(488)  # lit during the set
        if len(seen) == 13:
            raise RuntimeError("injected failure")

    engine.events.frame_ready.connect(explode)
    with pytest.raises(Exception, match="injected failure"):
        engine.run(_plans(scope, 3))
    assert not any(scope.laser_is_on(line) for line in scope.profile.laser_lines)
    assert not scope.core.getSLMImage("SLM").any()
    assert not scope.core.isSequenceRunning()


def test_dose_budget_stops_with_a_clear_message(scope):
    engine = Engine(scope, dose_budget_mj=0.5)  # one set = 20 mW × 2 ms × 9 = 0.36 mJ
    done = []
    engine.events.set_complete.connect(lambda plan, frames, metas: done.append(plan.t))
    with pytest.raises(DoseBudgetExceeded, match="light-dose budget of 0.5 mJ"):
        engine.run(_plans(scope, 4))
    assert done == [0]
    assert not scope.laser_is_on(488)


def test_hardware_and_software_timing_give_the_same_frames(scope):
    results = {}
    for hardware in (True, False):
        engine = Engine(scope, hardware_sequencing=hardware)
        patterns = []
        engine.events.frame_ready.connect(lambda r, p=patterns: p.append(r.meta["slm_pattern"]))
        stats = engine.run(_plans(scope, 2))
        results[hardware] = (stats.frames_acquired, patterns)
    assert results[True] == results[False] == (18, list(range(9)) * 2)


def _start_acquire(protocol: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "srlive",
            "acquire",
            str(protocol),
            "--out",
            str(out),
            "--json",
            "--set",
            "SimHub.FrameSize=64",
            "--set",
            "SimHub.Motion=Off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_frames(series_root: Path, n: int, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if zarr.open_group(str(series_root), mode="r").attrs["srlive"]["frames_flushed"] >= n:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError("no frames were flushed")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly_with_lasers_off(tmp_path, sig):
    protocol = _protocol(
        tmp_path,
        {
            "mda": {"time_plan": {"interval": 0, "loops": 400}, "channels": [{"config": "488"}]},
            "srlive": {"channels": {"488": {"modality": "sim9", "exposure_ms": 5}}},
        },
    )
    out = tmp_path / "sig.zarr"
    proc = _start_acquire(protocol, out)
    _wait_for_frames(out / "p0_c488", 18)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout[stdout.index("{") :])
    assert summary["interrupted"] and summary["lasers_on_at_end"] == []
    reader = open_store(out / "p0_c488")
    assert reader.n_sets >= 2 and reader.n_sets == summary["series"]["p0_c488"]["sets"]


def test_kill_9_leaves_every_flushed_frame_intact(tmp_path):
    protocol = _protocol(
        tmp_path,
        {
            "mda": {"time_plan": {"interval": 0, "loops": 500}, "channels": [{"config": "488"}]},
            "srlive": {"channels": {"488": {"modality": "widefield", "exposure_ms": 5}}},
        },
    )
    out = tmp_path / "killed.zarr"
    proc = _start_acquire(protocol, out)
    _wait_for_frames(out / "p0_c488", 60)
    proc.kill()
    proc.wait(timeout=30)
    reader = open_store(out / "p0_c488")
    assert not reader.complete
    n = reader.n_frames
    assert 60 <= n < 500
    raw = reader.read_sets(0, n)
    crc = reader.frames["camera_crc"]
    assert len(crc) == n
    for i in range(n):  # each stored frame is bit-identical to what the camera produced
        assert zlib.crc32(np.ascontiguousarray(raw[i, 0, 0])) == int(crc[i])


@pytest.mark.parametrize("path", sorted((ROOT / "protocols").glob("*.yaml")), ids=lambda p: p.stem)
def test_example_protocols_validate(path):
    from srlive.acquisition.plan import build_plans
    from srlive.pipeline.run_protocol import validate

    protocol, profile = validate(path, None)
    plans, channels = build_plans(protocol, profile, (1536, 2048))
    assert plans and all(p.n_frames == p.modality.frames_per_set for p in plans)
    assert {c.line for c in channels} <= set(profile.laser_lines)
