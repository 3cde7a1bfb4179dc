"""Stores NGFF readers open (issue 16): the root a bioformats2raw-style collection whose
``OME/series`` lists every image, validated with yaozarrs as NGFF 0.5; and the camera's
noise model stored with the data and used by offline reconstruction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from simulators.imaging import default_sim_patterns, simulate_sim_stack
from simulators.samples import make_sample
from srlive import reconstruct
from srlive.pipeline.run_protocol import acquire
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.profiles import load_profile
from srlive.recon.offline import reconstruct_store
from srlive.recon.offline_fluctuation import reconstruct_bursts
from srlive.recon.optics import SIMOptics
from srlive.storage import AcquisitionStore, open_store
from srlive.storage.noise import NoiseRecord

yaozarrs = pytest.importorskip("yaozarrs")

N = 64
SMALL = [("SimHub", "FrameSize", str(N)), ("SimHub", "Motion", "Off")]


def _series(root: Path) -> list[str]:
    return json.loads((root / "OME" / "zarr.json").read_text())["attributes"]["ome"]["series"]


def _validate_all(root: Path) -> list[str]:
    """Validate the root and each image it lists (and each image's series store)."""
    yaozarrs.validate_zarr_store(str(root))
    listed = _series(root)
    for image in listed:
        yaozarrs.validate_zarr_store(str(root / image))
        store = (root / image).parent
        if store != root and (store / "raw").is_dir():  # a nested series store: a collection too
            yaozarrs.validate_zarr_store(str(store))
    return listed


def test_live_run_store_one_series_per_modality_validates(scope, tmp_path) -> None:
    """One layout for live runs and protocols: a root collection, one series store each."""
    out = tmp_path / "live.zarr"
    session = LiveSession(scope, LiveSettings("widefield", 488, 1.0, {488: 20.0}), out)
    try:
        session.snap()
        assert session.wait(30)
        session.set_modality("sim9")
        session.snap()
        assert session.wait(60)
    finally:
        session.close()
    listed = _validate_all(out)
    assert sorted(listed) == ["sim9/raw", "sim9/sr", "widefield/raw"]
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs["ome"]["bioformats2raw.layout"] == 3
    assert root.attrs["srlive"]["complete"] is True and root.attrs["srlive"]["live"] is True
    assert open_store(out / "widefield").n_sets == 1
    assert open_store(out / "sim9").sr_status() == {0: "reconstructed"}
    with pytest.raises(ValueError, match="holds 2 series"):  # a run of several: name one
        open_store(out)
    # the simulated camera's noise model, read from its properties, is recorded in each series
    for series in (out / "widefield", out / "sim9"):
        camera = open_store(series).camera
        assert camera is not None and camera.source == "camera", camera
        assert camera.offset_adu == scope.camera_noise.offset_adu
        assert camera.e_per_adu == pytest.approx(float(scope.core.getProperty("Camera", "Gain")))


def test_protocol_store_validates(tmp_path) -> None:
    protocol = tmp_path / "p.yaml"
    protocol.write_text(
        yaml.safe_dump(
            {
                "mda": {
                    "time_plan": {"interval": 0, "loops": 2},
                    "channels": [{"config": "488"}, {"config": "561"}],
                },
                "srlive": {
                    "channels": {
                        "488": {"modality": "sim9", "power_mw": 20},
                        "561": {"modality": "widefield", "power_mw": 10},
                    }
                },
            }
        )
    )
    out = tmp_path / "proto.zarr"
    summary = acquire(protocol, out=out, properties=SMALL)
    assert summary.complete
    listed = _validate_all(out)
    assert sorted(listed) == ["p0_c488/raw", "p0_c488/sr", "p0_c561/raw"]
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs["srlive"]["complete"] is True  # the final state kept the collection
    assert root.attrs["ome"]["bioformats2raw.layout"] == 3
    assert _series(out / "p0_c488") == ["raw", "sr"]
    camera = open_store(out / "p0_c488").camera
    assert camera is not None and camera.read_noise_e is not None and camera.offset_adu > 0


def test_an_old_layout_store_still_opens(tmp_path) -> None:
    """A layout-1 root (``"ome": {"version": "0.5"}`` only, no ``OME/``) reads as before."""
    path = _sim_store(tmp_path / "old.zarr", camera=None, offset=100.0, n_sets=1)
    root = zarr.open_group(str(path), mode="r+")
    root.update_attributes({"ome": {"version": "0.5"}})
    del root["OME"]
    reader = open_store(path)
    assert reader.n_sets == 1 and reader.camera is None


# -- the camera's noise model ----------------------------------------------------------


def _sim_sets(offset: float, n_sets: int) -> np.ndarray:
    """Simulated sim9 sets (angle-major) on a camera whose offset is ``offset`` ADU."""
    density = make_sample("microtubules", (2 * N, 2 * N), 32.5, seed=3, motion=False).density()
    patterns = default_sim_patterns(fov_nm=(N * 65.0, N * 65.0))
    sets = [
        simulate_sim_stack(density, patterns, rng=np.random.default_rng(s)) for s in range(n_sets)
    ]
    frames = np.stack(sets).astype(np.int32) + int(offset - 100.0)  # the simulator's is 100
    return frames.astype(np.uint16)


def _sim_store(path: Path, camera: NoiseRecord | None, offset: float, n_sets: int = 2) -> Path:
    profile = load_profile(None)
    with AcquisitionStore.create(
        path,
        frame_shape=(N, N),
        pixel_nm=profile.optics.pixel_nm,
        n_angles=3,
        n_phases=3,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=profile.laser_lines,
        profile=profile.model_dump(mode="json"),
        run={"modality": "sim9", "laser_line": 488},
        camera=camera,
    ) as store:
        for t, frames in enumerate(_sim_sets(offset, n_sets)):
            store.write_set(t, frames, [])
    return path


def test_stored_camera_offset_is_used_offline(tmp_path) -> None:
    offset = 260.0
    camera = NoiseRecord(offset, e_per_adu=0.5, read_noise_e=1.3, source="camera")
    store = _sim_store(tmp_path / "acq.zarr", camera, offset)
    assert open_store(store).camera == camera
    summary = reconstruct_store(store, "wiener-sim", tmp_path / "sr.zarr")
    assert summary["camera"]["offset_adu"] == offset and summary["camera"]["source"] == "store"
    assert not [w for w in summary["warnings"] if "noise model" in w]
    out = open_store(tmp_path / "sr.zarr")
    assert out.camera == NoiseRecord(offset, 0.5, 1.3, "store")  # the output records it too
    # set 0 is exactly the pure function's result with the camera's offset (and gain)
    profile = load_profile(None)
    optics = SIMOptics.from_profile(profile, 488).with_overrides(
        offset_adu=offset, gain_e_per_adu=0.5
    )
    raw0 = open_store(store).read_set(0).reshape(9, N, N)
    expected = reconstruct(raw0, "wiener-sim", optics=optics)
    np.testing.assert_array_equal(out.read_sr(0), expected)
    wrong = reconstruct(raw0, "wiener-sim", optics=optics.with_overrides(offset_adu=100.0))
    assert not np.allclose(wrong, expected)  # the offset matters: 100 ADU would be wrong


def test_a_learned_reconstruction_stores_its_error_map_beside_sr(tmp_path) -> None:
    """The error a learned model expects per pixel is an NGFF image, ``sr_error``, beside
    ``sr`` (same grid, units and time axis), listed in the collection and validated like it;
    one process or a distributed job writes the same."""
    from srlive.recon.distributed import reconstruct_distributed
    from srlive.recon.learned.infer import learned

    camera = NoiseRecord(100.0, e_per_adu=0.5, read_noise_e=1.3, source="camera")
    store = _sim_store(tmp_path / "acq.zarr", camera, 100.0)
    summary = reconstruct_store(store, "dl-wf2sr", tmp_path / "dl.zarr")
    assert summary["sr_error_path"] == "sr_error/0"
    listed = _validate_all(tmp_path / "dl.zarr")
    assert listed == ["raw", "sr", "sr_error"]
    out = open_store(tmp_path / "dl.zarr")
    assert out.sr_error.shape == out.sr.shape and out.sr_error.dtype == out.sr.dtype
    attrs = zarr.open_group(str(tmp_path / "dl.zarr"), mode="r")["sr_error"].attrs
    assert (
        attrs["ome"]["multiscales"][0]["datasets"]
        == (
            zarr.open_group(str(tmp_path / "dl.zarr"), mode="r")["sr"].attrs["ome"]["multiscales"][
                0
            ]["datasets"]
        )
    )
    raw0 = open_store(store).read_set(0).reshape(9, N, N)
    expected = learned("dl-wf2sr", "auto", 100.0)(raw0.mean(axis=0, keepdims=True))
    for t in range(2):
        error = out.read_sr_error(t)
        assert np.isfinite(error).all() and (error > 0).all()
    np.testing.assert_allclose(out.read_sr_error(0), expected.uncertainty, rtol=1e-5)
    # the same through a distributed job: its workers write the maps too
    reconstruct_distributed([store], "dl-wf2sr", tmp_path / "dist.zarr", workers=1)
    dist = open_store(tmp_path / "dist.zarr")
    assert _validate_all(tmp_path / "dist.zarr") == ["raw", "sr", "sr_error"]
    for t in range(2):
        np.testing.assert_allclose(dist.read_sr_error(t), out.read_sr_error(t), rtol=1e-5)
    # Wiener SIM predicts no error: no map
    reconstruct_store(store, "wiener-sim", tmp_path / "sim.zarr")
    assert _series(tmp_path / "sim.zarr") == ["raw", "sr"]
    assert open_store(tmp_path / "sim.zarr").sr_error is None


def test_a_store_without_a_noise_model_falls_back_to_the_profile_and_says_so(tmp_path) -> None:
    store = _sim_store(tmp_path / "old.zarr", None, 100.0, n_sets=1)
    summary = reconstruct_store(store, "wiener-sim", tmp_path / "sr.zarr")
    assert summary["camera"]["offset_adu"] == 100.0 and summary["camera"]["source"] == "profile"
    (note,) = [w for w in summary["warnings"] if "noise model" in w]
    assert "profile's offset 100 ADU" in note


def test_fluctuation_reconstruction_takes_the_stored_offset(tmp_path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "burst.zarr"
    profile = load_profile(None)
    with AcquisitionStore.create(
        path,
        frame_shape=(16, 16),
        pixel_nm=65.0,
        n_angles=1,
        n_phases=10,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[488],
        profile=profile.model_dump(mode="json"),
        run={"modality": "fluctuation", "laser_line": 488},
        camera=NoiseRecord(300.0, source="camera"),
    ) as store:
        store.write_set(0, rng.integers(300, 400, (1, 10, 16, 16), dtype=np.uint16), [])
    summary = reconstruct_bursts(path, "sofi2", tmp_path / "f.zarr")
    assert summary["offset_adu"] == 300.0 and summary["offset_adu_from"] == "store"
    assert open_store(tmp_path / "f.zarr").camera.offset_adu == 300.0
