"""Fault injection on running acquisitions: a full disk, a failing camera thread.

Issue 13 items 3 (disk full), 7 (failures reported as success) and 14 (interrupted runs).
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import time
from pathlib import Path

import pytest
import zarr.storage

from srlive.acquisition.engine import CameraError, Engine, SetPlan
from srlive.acquisition.modalities import get_modality
from srlive.cli import main
from srlive.storage import open_store
from srlive.storage.files import PIPELINE_ENV

RUN = ["run", "--headless", "--json", "--set", "SimHub.FrameSize=128"]


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs (root only; room for a store's metadata and a few sets, not 200)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


class _Times(logging.Handler):
    """When the pipeline reported the first failed write (the CLI replaces root handlers)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def caplog():
    logger = logging.getLogger("srlive.pipeline.store_writer")
    handler, level = _Times(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _check_stopped_run(out: Path, capsys, caplog, ended: float) -> None:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    err = [ln for ln in captured.err.splitlines() if ln.startswith("srlive: error")]
    assert len(err) == 1 and "No space left on device" in err[0], captured.err
    summary = json.loads(captured.out)
    assert summary["lasers_on_at_end"] == []  # read back from the laser devices
    assert summary["raw_frames_acquired"] < 200 * 9  # it did not keep lighting the sample
    failed = [r.created for r in caplog.records if "store write failed" in r.getMessage()]
    assert failed and ended - failed[0] < 10.0
    r = open_store(out)
    assert not r.complete and "No space left" in r.attrs["error"]
    assert r.n_sets >= 1
    r.read_sets()  # every set it counts is intact (CRC checked)


def test_full_disk_stops_the_run_at_once(small_disk, capsys, caplog) -> None:
    out = small_disk / "a.zarr"
    rc = main([*RUN, "--frames", "200", "--out", str(out)])
    ended = time.time()
    assert rc == 3
    _check_stopped_run(out, capsys, caplog, ended)


def test_injected_write_error_stops_the_run(tmp_path, capsys, caplog, monkeypatch) -> None:
    """The same without a tmpfs: the store's file writes fail with ENOSPC after a few sets.

    The failure is injected into zarr-python's local store, so the image arrays are written
    through zarr-python's codec pipeline here (the tmpfs test above fills a real disk
    through zarrs', the default)."""
    monkeypatch.setenv(PIPELINE_ENV, "zarr.core.codec_pipeline.BatchedCodecPipeline")
    real_set = zarr.storage.LocalStore.set
    writes = {"n": 0}

    async def failing_set(self, key, value):
        if "/raw/0/c/" in f"/{key}":
            writes["n"] += 1
            if writes["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", failing_set)
    out = tmp_path / "a.zarr"
    rc = main([*RUN, "--frames", "200", "--out", str(out)])
    ended = time.time()
    monkeypatch.undo()
    assert rc == 3
    _check_stopped_run(out, capsys, caplog, ended)
    assert open_store(out).n_sets == 3


def _plan(scope, n_frames: int) -> SetPlan:
    return SetPlan(
        index=0,
        t=0,
        modality=get_modality("widefield"),
        line=488,
        power_mw=1.0,
        exposure_ms=5.0,
        slm_images=(),
        n_frames=n_frames,
        channel="488",
    )


def test_camera_thread_failure_is_an_error_with_lasers_off(scope) -> None:
    from simulators.devices import hub_world

    world = hub_world("SimHub")
    real = world.expose
    count = {"n": 0}

    def failing_expose(*args, **kwargs):
        count["n"] += 1
        if count["n"] > 2:
            raise OSError("sensor link lost")
        return real(*args, **kwargs)

    world.expose = failing_expose
    try:
        engine = Engine(scope, hardware_sequencing=True)
        with pytest.raises(CameraError, match="stopped after 2 of 5 frames.*sensor link lost"):
            engine.run([_plan(scope, 5)], __import__("threading").Event())
    finally:
        world.expose = real
    assert not any(scope.laser_is_on(ln) for ln in scope.profile.laser_lines)


def test_camera_failure_fails_the_command(tmp_path, capsys, monkeypatch) -> None:
    import simulators.world as sim_world

    real = sim_world.SimulatedWorld.expose

    def failing_expose(self, *args, **kwargs):
        raise OSError("sensor link lost")

    monkeypatch.setattr(sim_world.SimulatedWorld, "expose", failing_expose)
    out = tmp_path / "a.zarr"
    rc = main([*RUN, "--modality", "widefield", "--frames", "3", "--out", str(out)])
    monkeypatch.setattr(sim_world.SimulatedWorld, "expose", real)
    captured = capsys.readouterr()
    assert rc == 3
    assert "sensor link lost" in captured.err
    summary = json.loads(captured.out)
    assert summary["lasers_on_at_end"] == [] and summary["raw_frames_stored"] == 0
    if (out / "zarr.json").exists():
        assert not open_store(out).complete
    assert "sensor link lost" in summary["error"]
