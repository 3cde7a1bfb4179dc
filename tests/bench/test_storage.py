"""``srlive bench storage``: every candidate writes the same sets, each against plain writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from srlive.bench.storage import bench_storage
from srlive.cli import main
from srlive.storage import open_store
from srlive.storage.files import PIPELINE_ENV, image_pipeline


def test_bench_storage_small(tmp_path: Path) -> None:
    res = bench_storage(
        tmp_path,
        n_sets=8,
        frame_shape=(64, 64),
        candidates=["store", "store-zarr-python", "store-blosc"],
        rounds=2,
    )
    json.dumps(res)
    assert res["n_angles"] == 3 and res["n_phases"] == 3
    assert math.isclose(res["data_MB"], 8 * 9 * 64 * 64 * 2 / 1e6, rel_tol=1e-2)
    assert len(res["plain_MBps_runs"]) == 2 * 4  # before the first candidate and after each
    for name in ("store", "store-zarr-python", "store-blosc"):
        figures = res["candidates"][name]
        assert figures["MBps"] > 0 and len(figures["vs_plain_rounds"]) == 2
    assert res["store_MBps"] == res["candidates"]["store"]["MBps"]
    # uniform 12-bit noise: bit-shuffle drops the 4 empty bit planes, the plain store cannot
    raw_bytes, stored = 8 * 9 * 64 * 64 * 2, res["candidates"]["store"]["bytes_on_disk"]
    assert stored > raw_bytes
    assert stored - res["candidates"]["store-blosc"]["bytes_on_disk"] > 0.2 * raw_bytes
    assert not any(tmp_path.glob("srlive_bench_*"))  # cleaned up


def test_simulated_camera_frames(tmp_path: Path) -> None:
    res = bench_storage(
        tmp_path, n_sets=3, frame_shape=(32, 32), candidates=["zarr-array"], rounds=1, data="camera"
    )
    assert res["data"] == "camera" and res["candidates"]["zarr-array"]["MBps"] > 0
    with pytest.raises(ValueError, match="9 frames per set"):
        bench_storage(tmp_path, n_sets=2, frame_shape=(32, 32), n_frames_per_set=4, data="camera")


def test_unknown_candidate_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "storage", "--candidates", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err


@pytest.mark.parametrize("pipeline", ["zarrs", None])
def test_image_arrays_use_the_pipeline_named(tmp_path: Path, monkeypatch, pipeline) -> None:
    """The store's image arrays use zarrs' pipeline (srlive's ImageCodecPipeline) unless
    SRLIVE_IMAGE_CODEC_PIPELINE says otherwise; its tables always use zarr-python's (atomic
    file replacement)."""
    from srlive.storage import AcquisitionStore

    if pipeline is None:
        monkeypatch.setenv(PIPELINE_ENV, "zarr.core.codec_pipeline.BatchedCodecPipeline")
    store = AcquisitionStore.create(
        tmp_path / "s.zarr",
        frame_shape=(16, 16),
        pixel_nm=65.0,
        n_angles=1,
        n_phases=1,
        sr_shape=(32, 32),
        sr_pixel_nm=32.5,
        laser_lines=[488],
        profile={},
        run={},
    )
    with store:

        def kinds(arrays: list) -> set[str]:
            return {type(a.async_array.codec_pipeline).__name__ for a in arrays}

        images, tables = kinds([store._raw, store._sr]), kinds(list(store._frames.arrays.values()))
    assert images == {"ImageCodecPipeline" if pipeline else "BatchedCodecPipeline"}
    assert tables == {"BatchedCodecPipeline"}
    assert open_store(tmp_path / "s.zarr").complete
    with image_pipeline():  # the context restores zarr's configuration
        pass
    import zarr

    assert zarr.config.get("codec_pipeline.path").endswith("BatchedCodecPipeline")
