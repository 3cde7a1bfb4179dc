"""Tests of the streaming OME-Zarr acquisition store (srlive.storage)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from srlive.storage import AcquisitionStore, open_store

H, W = 32, 48
A, P = 3, 3
SR_SHAPE = (64, 96)
LINES = (488, 561)


def make_set(seed: int, t: int, shape: tuple[int, int, int, int] = (A, P, H, W)) -> np.ndarray:
    """Deterministic raw set ``t`` (the SIGKILL child computes the same)."""
    return np.random.default_rng([seed, t]).integers(0, 65536, shape, dtype=np.uint16)


def make_meta(t: int, n: int = A * P) -> list[dict[str, Any]]:
    return [
        {
            "time_s": t * 0.5 + i * 0.01,
            "exposure_ms": 10.0 + i,
            "power_mw_488": 1.5,
            "power_mw_561": 0.25 * i,
            "slm_pattern": i,
            "z_um": 1.0 + t,
            "x_um": -2.0,
            "y_um": 3.0,
            "event": 1000 + t,
            "focus_score": t + i / 10,
        }
        for i in range(n)
    ]


def create(path: Path, **kw: Any) -> AcquisitionStore:
    args: dict[str, Any] = {
        "frame_shape": (H, W),
        "pixel_nm": 65.0,
        "n_angles": A,
        "n_phases": P,
        "sr_shape": SR_SHAPE,
        "sr_pixel_nm": 32.5,
        "laser_lines": LINES,
        "profile": {"name": "sim_default", "lasers": {488: "L488"}},
        "run": {"protocol": "sim", "interval_s": None, "sets": (1, 2)},
        "sr_method": "wiener",
        "extra_frame_columns": ("focus_score",),
    }
    args.update(kw)
    return AcquisitionStore.create(path, **args)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "acq.zarr"
    seed = 7
    with create(path) as store:
        for t in range(6):
            store.write_set(t, make_set(seed, t), make_meta(t))
        assert store.frames_written == 6 * A * P
    r = open_store(path)
    assert r.complete
    assert r.raw.shape == (6, A * P, H, W)
    assert r.raw.dtype == np.uint16
    assert r.n_sets == 6 and r.n_frames == 54
    for t in range(6):
        np.testing.assert_array_equal(r.read_set(t), make_set(seed, t))
    np.testing.assert_array_equal(r.read_sets(), np.stack([make_set(seed, t) for t in range(6)]))
    # raw[t, a * P + p] is frame (a, p) of set t
    np.testing.assert_array_equal(r.raw[4, 1 * P + 2], make_set(seed, 4)[1, 2])

    f = r.frames
    expected_cols = ["frame", "t", "a", "p", "time_s", "exposure_ms", "power_mw_488"]
    expected_cols += ["power_mw_561", "slm_pattern", "z_um", "x_um", "y_um", "event", "crc32"]
    expected_cols += ["focus_score"]
    assert list(f) == expected_cols
    assert r.root["tables/frames"].attrs["columns"] == expected_cols
    assert all(len(c) == 54 for c in f.values())
    metas = [m for t in range(6) for m in make_meta(t)]
    np.testing.assert_array_equal(f["frame"], np.arange(54))
    np.testing.assert_array_equal(f["t"], np.repeat(np.arange(6), 9))
    np.testing.assert_array_equal(f["a"], np.tile(np.repeat(np.arange(A), P), 6))
    np.testing.assert_array_equal(f["p"], np.tile(np.arange(P), A * 6))
    for col in ["time_s", "exposure_ms", "power_mw_488", "power_mw_561", "slm_pattern", "z_um"]:
        np.testing.assert_allclose(f[col], [m[col] for m in metas])
    for col in ["x_um", "y_um", "event", "focus_score"]:
        np.testing.assert_allclose(f[col], [m[col] for m in metas])
    assert f["t"].dtype == np.int32 and f["a"].dtype == np.int16 and f["frame"].dtype == np.int64
    assert f["exposure_ms"].dtype == np.float32 and f["slm_pattern"].dtype == np.int16

    attrs = r.attrs
    assert attrs["frames_flushed"] == 54 and attrs["complete"] is True
    assert attrs["software"].startswith("srlive ")
    assert attrs["profile"]["lasers"] == {"488": "L488"}
    assert attrs["run"]["sets"] == [1, 2]
    assert r.root.attrs["ome"] == {"version": "0.5", "bioformats2raw.layout": 3}
    assert r.root["OME"].attrs["ome"] == {"version": "0.5", "series": ["raw", "sr"]}
    # the time scale was estimated from time_s (0.5 s between sets)
    scale = r.root["raw"].attrs["ome"]["multiscales"][0]["datasets"][0]
    assert scale["coordinateTransformations"][0]["scale"] == [0.5, 1.0, 65.0, 65.0]


def test_missing_metadata_gets_defaults(tmp_path: Path) -> None:
    store = create(tmp_path / "d.zarr", sr_shape=None, sr_pixel_nm=None, interval_s=0.2)
    store.write_set(0, make_set(1, 0), [])
    with pytest.warns(UserWarning, match="no column"):
        store.write_set(1, make_set(1, 1), [{"bogus": 1}] * (A * P))
    with pytest.raises(ValueError, match="slm_pattern"):
        store.write_set(2, make_set(1, 2), [{"slm_pattern": "blank"}] * (A * P))
    assert store.frames_written == 18  # the bad set was refused before anything was stored
    store.write_set(2, make_set(1, 2), [{"slm_pattern": None, "time_s": None}] * (A * P))
    store.close()
    f = open_store(tmp_path / "d.zarr").frames
    np.testing.assert_array_equal(f["frame"], np.arange(27))
    assert np.all(np.isnan(f["time_s"])) and np.all(f["slm_pattern"] == -1)
    assert np.all(f["event"] == -1)


def test_ngff_05_validation(tmp_path: Path) -> None:
    yaozarrs = pytest.importorskip("yaozarrs")
    path = tmp_path / "v.zarr"
    with create(path, interval_s=0.25) as store:
        for t in range(3):
            store.write_set(t, make_set(0, t), make_meta(t))
            store.write_sr(t, np.ones(SR_SHAPE, np.float32) * t, {"time_s": t * 0.25})
    for image in ("", "raw", "sr"):  # the root: a collection of the two images
        yaozarrs.validate_zarr_store(str(path / image))
    root = zarr.open_group(path, mode="r")
    assert root.metadata.zarr_format == 3
    raw = root["raw/0"]
    assert raw.metadata.dimension_names == ("t", "ap", "y", "x")
    assert raw.chunks == (1, 1, H, W) and raw.shards == (1, A * P, H, W)
    ms = root["raw"].attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "ap", "y", "x"]
    assert [a["type"] for a in ms["axes"]] == ["time", "angle_phase", "space", "space"]
    assert ms["axes"][2]["unit"] == "nanometer"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [0.25, 1.0, 65.0, 65.0]
    # ome-zarr-models (strict about NGFF 0.5 axes: one custom axis at most)
    image_mod = pytest.importorskip("ome_zarr_models.v05.image")
    for image in ("raw", "sr"):
        model = image_mod.Image.from_zarr(zarr.open_group(path / image, mode="r"))
        assert model.attributes.ome.version == "0.5"


def test_sr_images_and_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "sr.zarr"
    store = create(path, sr_pixel_nm=30.0)
    rng = np.random.default_rng(3)
    imgs = {}
    for t in range(5):
        store.write_set(t, make_set(2, t), make_meta(t))
        if t % 2 == 0:
            imgs[t] = rng.random(SR_SHAPE, dtype=np.float32)
            method = "wiener" if t < 4 else "unet"
            store.write_sr(t, imgs[t], {"time_s": t * 0.5, "method": method, "recon_ms": 12.5})
    assert store.sr_written == 3
    store.close()
    r = open_store(path)
    assert r.sr is not None and r.sr.shape == (5, *SR_SHAPE) and r.sr.dtype == np.float32
    for t, img in imgs.items():
        np.testing.assert_array_equal(r.read_sr(t), img)
    assert np.all(np.isnan(r.read_sr(1)))  # no SR for set 1
    assert r.sr_pixel_nm == 30.0 and r.pixel_nm == 65.0
    ms = r.root["sr"].attrs["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][1:] == [30.0, 30.0]
    assert ms["name"] == "sr (wiener)"
    assert r.root["sr"].attrs["srlive"]["method"] == "wiener"
    assert r.root["sr"].attrs["srlive"]["pixel_nm"] == 30.0
    st = r.sr_table
    np.testing.assert_array_equal(st["t"], [0, 2, 4])
    np.testing.assert_allclose(st["time_s"], [0.0, 1.0, 2.0])
    assert list(st["method"]) == ["wiener", "wiener", "unet"]
    np.testing.assert_allclose(st["recon_ms"], 12.5)
    assert np.all(np.isnan(st["confidence"]))
    assert r.attrs["sr_flushed"] == 3


def test_widefield_without_sr(tmp_path: Path) -> None:
    path = tmp_path / "wf.zarr"
    frames = make_set(5, 0, (1, 1, H, W))
    with create(path, n_angles=1, n_phases=1, sr_shape=None, sr_pixel_nm=None) as store:
        store.write_set(0, frames, make_meta(0, 1))
        store.write_set(1, frames[0], make_meta(1, 1))  # (A*P, H, W) is accepted too
        with pytest.raises(RuntimeError, match="without sr_shape"):
            store.write_sr(0, np.zeros(SR_SHAPE), {})
        with pytest.raises(ValueError, match="shape"):
            store.write_set(2, np.zeros((2, 1, H, W), np.uint16), [])
    r = open_store(path)
    assert r.sr is None and r.raw.shape == (2, 1, H, W)
    np.testing.assert_array_equal(r.read_set(1), frames)


def test_exists_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "o.zarr"
    create(path).close()
    with pytest.raises(FileExistsError):
        create(path)
    with create(path, overwrite=True) as store:
        store.write_set(0, make_set(0, 0), make_meta(0))
    assert open_store(path).n_sets == 1


def test_exception_in_context_manager_marks_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "crash.zarr"
    with pytest.raises(RuntimeError, match="camera died"), create(path) as store:
        for t in range(4):
            store.write_set(t, make_set(9, t), make_meta(t))
        store.write_sr(1, np.full(SR_SHAPE, 2.0, np.float32), {"time_s": 0.5})
        raise RuntimeError("camera died")
    assert store.closed
    r = open_store(path)
    assert not r.complete
    assert r.n_sets == 4 and r.n_frames == 36 and len(r.frames["t"]) == 36
    for t in range(4):
        np.testing.assert_array_equal(r.read_set(t), make_set(9, t))
    np.testing.assert_array_equal(r.read_sr(1), 2.0)


def test_reader_sees_flushed_data_while_writing(tmp_path: Path) -> None:
    path = tmp_path / "live.zarr"
    store = create(path, flush_interval_s=0.0)  # commit in the background after every write
    for t in range(5):
        store.write_set(t, make_set(4, t), make_meta(t))
    store.flush()
    r = open_store(path)
    assert not r.complete and r.n_frames == 45 and r.n_sets == 5
    np.testing.assert_array_equal(r.read_set(4), make_set(4, 4))
    assert r.raw.shape[0] >= 5  # the time axis grows in blocks while writing
    store.close()
    assert open_store(path).raw.shape[0] == 5


def test_zstd_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "z.zarr"
    with create(path, compressor="zstd") as store:
        store.write_set(0, make_set(8, 0), make_meta(0))
    r = open_store(path)
    np.testing.assert_array_equal(r.read_set(0), make_set(8, 0))
    assert "zstd" in json.dumps(r.raw.metadata.to_dict()).lower()


CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from srlive.storage import AcquisitionStore

    path, seed = sys.argv[1], int(sys.argv[2])
    H, W, A, P = 32, 48, 3, 3

    def make_set(t):
        return np.random.default_rng([seed, t]).integers(0, 65536, (A, P, H, W), dtype=np.uint16)

    store = AcquisitionStore.create(
        path, frame_shape=(H, W), pixel_nm=65.0, n_angles=A, n_phases=P,
        sr_shape=None, sr_pixel_nm=None, laser_lines=[488], profile={}, run={},
        flush_interval_s=0.0,
    )
    t = 0
    while True:
        meta = [{"time_s": t + i / 100, "slm_pattern": i, "event": t} for i in range(A * P)]
        store.write_set(t, make_set(t), meta)
        if t % 5 == 4:
            store.flush()
            print("flushed", store.frames_flushed, flush=True)
        t += 1
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkill_mid_write_leaves_readable_store(tmp_path: Path) -> None:
    path = tmp_path / "killed.zarr"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    seed = 1234
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while reported < 30 * A * P:
            line = proc.stdout.readline()
            assert line, f"child exited early: {proc.stderr.read() if proc.stderr else ''}"
            reported = int(line.split()[1])
            assert time.monotonic() < deadline, "child too slow"
        time.sleep(0.013)  # land somewhere inside the next writes
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    r = open_store(path)
    assert not r.complete
    n = r.n_frames
    assert n >= reported and n % (A * P) == 0
    n_sets = n // (A * P)
    assert r.n_sets == n_sets and r.raw.shape[0] >= n_sets
    for t in range(n_sets):
        np.testing.assert_array_equal(r.read_set(t), make_set(seed, t))
    f = r.frames
    assert all(len(c) == n for c in f.values())
    np.testing.assert_array_equal(f["t"], np.repeat(np.arange(n_sets), A * P))
    np.testing.assert_array_equal(f["event"], np.repeat(np.arange(n_sets), A * P))
    np.testing.assert_array_equal(f["slm_pattern"], np.tile(np.arange(A * P), n_sets))
    np.testing.assert_allclose(
        f["time_s"], (np.arange(n_sets)[:, None] + np.arange(A * P)[None] / 100).ravel()
    )
    zarr.open_group(path, mode="r")  # plain zarr opens it too


@pytest.mark.parametrize("setting", ["1", "0"])
def test_image_chunks_written_past_the_page_cache(tmp_path: Path, monkeypatch, setting) -> None:
    """Where the file system takes O_DIRECT (the probe says so), every image array's zarrs
    pipeline writes with it, including the handles that write past the flushed time axis;
    SRLIVE_DIRECT_IO=0 turns it off. The data read back are the data written either way."""
    from zarr.storage import LocalStore

    from srlive.storage.codec_pipeline import DIRECT_IO_ENV, direct_io_works

    monkeypatch.setenv(DIRECT_IO_ENV, setting)
    expected = setting == "1" and direct_io_works(LocalStore(tmp_path))
    path = tmp_path / "d.zarr"
    with create(path, flush_interval_s=None) as store:
        for t in range(3):
            store.write_set(t, make_set(5, t), make_meta(t))
            store.write_sr(t, np.full(SR_SHAPE, t, np.float32), {})
        arrays = [store._raw, store._sr, *store._handles.values()]
        assert len(arrays) == 4  # the two image arrays and a writing handle on each
        assert {a.async_array.codec_pipeline.direct_io for a in arrays} == {expected}
    r = open_store(path)
    assert r.complete and r.raw.shape[0] == 3
    for t in range(3):
        np.testing.assert_array_equal(r.read_set(t), make_set(5, t))
        np.testing.assert_array_equal(r.read_sr(t), t)
    assert not list(path.rglob(".srlive-direct-io-*"))  # the probe leaves nothing behind


# page faults per 4.7 MB set written, in a fresh interpreter (this process's other threads,
# from earlier tests, fault too); argv: store directory, "keep" or "fresh" shard buffers
_SHARD_FAULTS = """
import resource, sys
import numpy as np
import srlive.storage.codec_pipeline as cp
from srlive.storage.store import AcquisitionStore
if sys.argv[2] == "fresh":
    cp.keep_shard_buffers = lambda: True  # report them kept, leave glibc's thresholds alone
sets = [np.random.default_rng(t).integers(0, 65536, (3, 3, 512, 512), dtype=np.uint16)
        for t in range(4)]
with AcquisitionStore.create(sys.argv[1], frame_shape=(512, 512), pixel_nm=65.0, n_angles=3,
                             n_phases=3, flush_interval_s=None) as store:
    for t in range(4):  # warm-up: the buffers and zarr's caches
        store.write_set(t, sets[t], [])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for t in range(4, 24):
        store.write_set(t, sets[t % 4], [])
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def test_shard_buffers_reuse_their_pages(tmp_path: Path) -> None:
    """With O_DIRECT, zarrs assembles each shard in a page-aligned buffer; under glibc that
    buffer reuses its pages (keep_shard_buffers) instead of faulting every page of every
    set in anew (measured against the same writes with glibc's own thresholds)."""
    from zarr.storage import LocalStore

    from srlive.storage.codec_pipeline import direct_io_works, keep_shard_buffers

    if not (direct_io_works(LocalStore(tmp_path)) and keep_shard_buffers()):
        pytest.skip("no O_DIRECT here, or not glibc")
    faults = {}
    for mode in ("keep", "fresh"):
        run = [sys.executable, "-c", _SHARD_FAULTS, str(tmp_path / f"{mode}.zarr"), mode]
        out = subprocess.run(run, capture_output=True, text=True, timeout=300, check=True)
        faults[mode] = float(out.stdout.split()[-1])
    pages = 9 * 512 * 512 * 2 / 4096
    assert faults["fresh"] > 0.5 * pages  # glibc's default: every page of every set anew
    # quiet: ~60 kept against ~3,000 fresh; under load the writes spread over more threads'
    # arenas (~350 kept seen at load 8-11), still far below the fresh buffers' count
    assert faults["keep"] < 0.3 * faults["fresh"], faults
