"""Benchmark: distributed reconstruction (Dask LocalCluster) against one process.

On one synthetic sim9 store of ``sets`` sets it times the single-process
``srlive reconstruct`` path, then the distributed path with 1 worker and with 2 workers
(each on a fresh LocalCluster whose start-up is reported apart from the job), and reports
throughputs, their ratios, the distributed path's per-set overhead at 1 worker, and where
the time goes (the median per-set reconstruction time inside the workers against the wall
time per set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulators.camera_model import CameraModel
from simulators.imaging import FringeCache, default_sim_patterns, expected_from_cache
from simulators.optics import otf_2d
from simulators.samples import make_sample
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import AcquisitionStore, open_store


def synthetic_sim_store(path: str | Path, n_sets: int, size: int, seed: int = 0) -> Path:
    """A sim9 store of a static microtubule sample, fresh camera noise in every set."""
    path = Path(path)
    sample = make_sample("microtubules", (2 * size, 2 * size), 32.5, seed=seed, motion=False)
    cache = FringeCache(sample.density(), otf_2d(sample.shape, 32.5, 1.49, 510.0), 2, 32.5)
    patterns = default_sim_patterns(fov_nm=(size * 65.0, size * 65.0))
    expected = [expected_from_cache(cache, p, 4000.0) for p in patterns]
    camera, rng = CameraModel(), np.random.default_rng(seed)
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
        for t in range(n_sets):
            frames = np.stack([camera.expose(e, 10.0, rng) for e in expected])
            metas = [{"time_s": 0.1 * t + 0.01 * i} for i in range(9)]
            store.write_set(t, frames.reshape(3, 3, size, size), metas)
    return path


def _recon_ms(out: Path) -> float:
    return float(np.median(open_store(out).sr_table["recon_ms"]))


def bench_distributed(sets: int = 200, size: int = 256, method: str = "wiener-sim") -> dict:
    """Single process vs LocalCluster with 1 and 2 workers on one ``sets``-set store."""
    from distributed import Client

    from srlive.recon.distributed import local_cluster, reconstruct_distributed
    from srlive.recon.offline import reconstruct_input

    work = Path(tempfile.mkdtemp(prefix="srlive-bench-dist-"))
    try:
        store = synthetic_sim_store(work / "in.zarr", sets, size)
        start = time.perf_counter()
        reconstruct_input(store, method, work / "single.zarr")
        single_s = time.perf_counter() - start
        runs: dict[str, Any] = {}
        for n in (1, 2):
            start = time.perf_counter()
            with local_cluster(n, dashboard_address=None) as cluster, Client(cluster):
                startup_s = time.perf_counter() - start
                out = work / f"dist{n}.zarr"
                begin = time.perf_counter()
                reconstruct_distributed([store], method, out, scheduler=cluster.scheduler_address)
                job_s = time.perf_counter() - begin
            runs[str(n)] = {
                "cluster_startup_s": round(startup_s, 2),
                "job_s": round(job_s, 2),
                "sets_per_s": round(sets / job_s, 3),
                "wall_ms_per_set": round(1000 * job_s / sets, 1),
                "recon_ms_median_in_workers": round(_recon_ms(out), 1),
            }
        one, two = runs["1"], runs["2"]
        return {
            "benchmark": "distributed",
            "method": method,
            "sets": sets,
            "frame_shape": [size, size],
            "single_process": {
                "job_s": round(single_s, 2),
                "sets_per_s": round(sets / single_s, 3),
                "wall_ms_per_set": round(1000 * single_s / sets, 1),
                "recon_ms_median": round(_recon_ms(work / "single.zarr"), 1),
            },
            "workers": runs,
            "throughput_ratio_2_vs_1": round(two["sets_per_s"] / one["sets_per_s"], 3),
            "overhead_1_worker_vs_single": round(one["job_s"] / single_s - 1.0, 3),
            "cpu_count": os.cpu_count(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
