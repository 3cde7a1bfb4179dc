"""Simulated acquisition stores: the simulator's SIM sets written through srlive's store
(inputs for reconstruction tests and the distributed benchmark)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from simulators.camera_model import CameraModel
from simulators.imaging import FringeCache, default_sim_patterns, expected_from_cache
from simulators.optics import otf_2d
from simulators.samples import make_sample
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import AcquisitionStore

__all__ = ["simulated_sim_sets", "synthetic_sim_store"]


def simulated_sim_sets(
    n_sets: int, size: int, seed: int = 0, camera: CameraModel = CameraModel()
) -> Iterator[np.ndarray]:
    """``n_sets`` raw sim9 sets (3, 3, size, size) uint16 of a static microtubule sample
    (65 nm pixels, NA 1.49, 510 nm), fresh camera noise in every set."""
    sample = make_sample("microtubules", (2 * size, 2 * size), 32.5, seed=seed, motion=False)
    cache = FringeCache(sample.density(), otf_2d(sample.plane, 32.5, 1.49, 510.0), 2, 32.5)
    patterns = default_sim_patterns(fov_nm=(size * 65.0, size * 65.0))
    expected = [expected_from_cache(cache, p, 4000.0) for p in patterns]
    rng = np.random.default_rng(seed)
    for _ in range(n_sets):
        frames = np.stack([camera.expose(e, 10.0, rng) for e in expected])
        yield frames.reshape(3, 3, size, size)


def synthetic_sim_store(path: str | Path, n_sets: int, size: int, seed: int = 0) -> Path:
    """A sim9 store of :func:`simulated_sim_sets`, with the camera's noise model."""
    path = Path(path)
    camera = CameraModel()
    store = AcquisitionStore.create(
        path,
        frame_shape=(size, size),
        pixel_nm=65.0,
        n_angles=3,
        n_phases=3,
        sr_shape=None,
        sr_pixel_nm=None,
        laser_lines=[488],
        profile={},
        run={"laser_line": 488},
        camera=NoiseRecord(camera.offset_adu, camera.e_per_adu, camera.read_noise_e, "simulator"),
    )
    with store:
        for t, frames in enumerate(simulated_sim_sets(n_sets, size, seed, camera)):
            metas = [{"time_s": 0.1 * t + 0.01 * i} for i in range(9)]
            store.write_set(t, frames, metas)
    return path
