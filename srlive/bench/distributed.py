"""Distributed reconstruction (Dask LocalCluster) against one process.

On one synthetic sim9 store of ``sets`` sets it times the single-process
``srlive reconstruct`` path, then the distributed path with 1 worker and with 2 workers
(each on a fresh LocalCluster whose start-up is reported apart from the job), and reports
throughputs, their ratios, the distributed path's per-set overhead at 1 worker, and where
the time goes (the median per-set reconstruction time inside the workers against the wall
time per set).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulators.stores import synthetic_sim_store
from srlive.bench.common import positive
from srlive.storage.omezarr import open_store


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sets", type=positive(int), default=200, help="sets in the store")
    parser.add_argument("--size", type=positive(int), default=256, help="frame size, px")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_distributed(sets=args.sets, size=args.size)
