"""Fault injection on stores: overwrite guard, in-place outputs, second writers, damaged data.

Issue 13 items 1, 2, 4, 12 and 14 (pre-allocated space, interrupted runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

from srlive.cli import main
from srlive.storage import (
    AcquisitionStore,
    StoreBusyError,
    StoreDamagedError,
    StoreGuardError,
    claim_output,
    open_store,
)

H, W, A, P = 16, 24, 3, 3
RUN = ["run", "--headless", "--modality", "widefield", "--set", "SimHub.FrameSize=64"]


def _create(path: Path, **kw) -> AcquisitionStore:
    geometry = {"frame_shape": (H, W), "pixel_nm": 65.0, "n_angles": A, "n_phases": P}
    return AcquisitionStore.create(path, **geometry, laser_lines=[488], **kw)


def _set(t: int) -> np.ndarray:
    return np.random.default_rng(t).integers(0, 4000, (A, P, H, W), dtype=np.uint16)


def _store(path: Path, n: int = 3) -> Path:
    with _create(path) as store:
        for t in range(n):
            store.write_set(t, _set(t), [])
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("srlive: error:"), err
    return err[0]


# --- item 1: --overwrite only replaces srlive stores ---------------------------------------
@pytest.mark.parametrize("command", ["run", "reconstruct"])
def test_overwrite_refuses_a_directory_that_is_not_a_store(tmp_path, capsys, command) -> None:
    user_dir = tmp_path / "d"
    user_dir.mkdir()
    (user_dir / "precious.txt").write_text("x")
    if command == "run":
        argv = [*RUN, "--frames", "1", "--out", str(user_dir), "--overwrite"]
    else:
        argv = ["reconstruct", str(_store(tmp_path / "a.zarr")), "--method", "wiener-sim"]
        argv += ["--out", str(user_dir), "--overwrite"]
    assert main(argv) == 2
    assert "not an srlive store" in _one_error_line(capsys)
    assert (user_dir / "precious.txt").read_text() == "x"


def test_overwrite_refuses_a_file_and_a_foreign_zarr(tmp_path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("keep")
    foreign = tmp_path / "other.zarr"
    zarr.open_group(str(foreign), mode="w", zarr_format=3).attrs["x"] = 1
    for path in (f, foreign):
        with pytest.raises(StoreGuardError, match="not an srlive store"):
            _create(path, overwrite=True)
    assert f.read_text() == "keep" and (foreign / "zarr.json").exists()


def test_overwrite_replaces_an_srlive_store(tmp_path) -> None:
    path = _store(tmp_path / "a.zarr", n=3)
    with _create(path, overwrite=True) as store:
        store.write_set(0, _set(7), [])
    r = open_store(path)
    assert r.n_sets == 1 and r.complete
    np.testing.assert_array_equal(r.read_set(0), _set(7))


# --- item 2: an output that is (or overlaps) an input --------------------------------------
def test_reconstruct_in_place_is_refused_and_raw_kept(tmp_path, capsys) -> None:
    path = _store(tmp_path / "a.zarr")
    before = open_store(path).read_sets()
    argv = ["reconstruct", str(path), "--method", "wiener-sim", "--out", str(path)]
    assert main([*argv, "--overwrite"]) == 2
    assert "overlaps the input" in _one_error_line(capsys)
    np.testing.assert_array_equal(open_store(path).read_sets(), before)
    with pytest.raises(StoreGuardError, match="overlaps the input"):
        claim_output(path / "sr.zarr", inputs=[path])


# --- item 4: one writer per store -----------------------------------------------------------
HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from srlive.storage.guard import OutputLock
    lock = OutputLock.acquire(Path(sys.argv[1]))
    print("held", flush=True)
    time.sleep(60)
    """
)


def test_second_writer_is_refused_while_a_store_is_written(tmp_path, capsys) -> None:
    path = _store(tmp_path / "a.zarr")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError, match="being written by another srlive process"):
            _create(path, overwrite=True)
        assert main([*RUN, "--frames", "1", "--out", str(path), "--overwrite"]) == 2
        assert "being written" in _one_error_line(capsys)
        assert (path / "zarr.json").exists()  # nothing of the first writer's was deleted
    finally:
        holder.kill()
        holder.wait(10)
    with _create(path, overwrite=True):  # the kernel dropped the dead writer's lock
        pass


def test_two_writers_in_one_process_collide_cleanly(tmp_path) -> None:
    path = tmp_path / "a.zarr"
    first = _create(path)
    with pytest.raises(StoreBusyError):
        _create(path)
    with pytest.raises(StoreBusyError):
        _create(path, overwrite=True)
    first.close()


# --- item 12: damaged stores ---------------------------------------------------------------
def test_missing_raw_chunk_is_named_not_read_as_zeros(tmp_path, capsys) -> None:
    path = _store(tmp_path / "a.zarr")
    (path / "raw/0/c/1/0/0/0").unlink()
    r = open_store(path)
    r.read_set(0)
    with pytest.raises(StoreDamagedError, match=r"raw/0\[1\] is missing"):
        r.read_set(1)
    with pytest.raises(StoreDamagedError):
        r.read_sets()
    argv = ["reconstruct", str(path), "--method", "wiener-sim", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "missing" in _one_error_line(capsys)
    assert not open_store(tmp_path / "o").complete  # set 0 was written, set 1 refused


def test_garbled_chunk_fails_its_crc(tmp_path) -> None:
    path = _store(tmp_path / "a.zarr")
    chunk = path / "raw/0/c/2/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF  # one flipped byte inside frame 0's pixels
    chunk.write_bytes(bytes(data))
    with pytest.raises(StoreDamagedError, match="raw set 2 frame 0 fails its CRC"):
        open_store(path).read_set(2)


def test_truncated_chunk_gives_view_one_line(tmp_path, capsys) -> None:
    path = _store(tmp_path / "a.zarr")
    chunk = path / "raw/0/c/1/0/0/0"
    chunk.write_bytes(chunk.read_bytes()[:200])
    argv = ["view", str(path), "--t", "1", "--snapshot", str(tmp_path / "v.png")]
    assert main(argv) == 2
    assert "raw/0[1] cannot be decoded" in _one_error_line(capsys)
    assert not (tmp_path / "v.png").exists()


def test_view_refuses_a_set_the_store_does_not_have(tmp_path, capsys) -> None:
    path = _store(tmp_path / "a.zarr", n=2)
    argv = ["view", str(path), "--t", "3", "--snapshot", str(tmp_path / "v.png")]
    assert main(argv) == 2
    assert "no set 3" in _one_error_line(capsys)


@pytest.mark.parametrize("command", ["view", "reconstruct"])
def test_missing_tables_and_bad_json_are_named(tmp_path, capsys, command) -> None:
    path = _store(tmp_path / "a.zarr")

    def run() -> str:
        if command == "view":
            argv = ["view", str(path), "--snapshot", str(tmp_path / "v.png")]
        else:
            argv = ["reconstruct", str(path), "--method", "wiener-sim"]
            argv += ["--out", str(tmp_path / "o.zarr")]
        assert main(argv) == 2
        return _one_error_line(capsys)

    (path / "raw/0/zarr.json").write_text("{not json")
    assert "raw/0/zarr.json is not valid JSON" in run()
    path = _store(tmp_path / "b.zarr")
    import shutil

    shutil.rmtree(path / "tables")
    assert "tables/zarr.json is missing" in run()


def test_unwritable_output_is_an_error_not_an_interruption(tmp_path, capsys) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "file"
        blocked.write_text("")
        out = blocked / "a.zarr"  # a path under a file: no permission bit can be root-proof
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
        out = blocked / "a.zarr"
    assert main([*RUN, "--frames", "1", "--out", str(out)]) == 2
    assert "cannot create" in _one_error_line(capsys)


# --- item 14: no pre-allocated blank sets; interrupted runs are not complete ----------------
def test_raw_array_never_holds_blank_preallocated_sets(tmp_path) -> None:
    path = tmp_path / "a.zarr"
    store = _create(path, flush_interval_s=None)
    def shown() -> int:  # the sets any zarr reader sees
        return int(json.loads((path / "raw/0/zarr.json").read_text())["shape"][0])

    for t in range(3):
        store.write_set(t, _set(t), [])
        # never a set whose chunk is not written; all of them once flushed
        assert shown() <= t + 1
        assert all((path / f"raw/0/c/{i}/0/0/0").is_file() for i in range(shown()))
        store.flush()
        assert shown() == t + 1
    assert zarr.open_array(str(path / "raw/0"), mode="r").shape[0] == 3


def test_sigterm_run_is_marked_incomplete(tmp_path) -> None:
    import signal
    import time

    out = tmp_path / "a.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "srlive", *RUN, "--frames", "100000", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if open_store(out).n_sets >= 2:
                break
        except (FileNotFoundError, StoreDamagedError):  # not created yet
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 130
    r = open_store(out)
    assert not r.complete and r.n_sets >= 2
    r.read_sets()
