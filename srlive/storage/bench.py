"""Storage throughput benchmark: AcquisitionStore beside a plain sequential file write.

Run ``python -m srlive.storage.bench DIR [--sets N] [--compressor zstd]`` to print JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from srlive.storage.omezarr import AcquisitionStore

__all__ = ["bench_storage"]


def _angles_phases(n: int) -> tuple[int, int]:
    """Split ``n`` frames per set into (angles, phases), as square as possible."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def _plain_write(path: Path, sets: list[np.ndarray], n_sets: int) -> float:
    """Seconds to write ``n_sets`` sets sequentially to one file, fsync included."""
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for i in range(n_sets):
            f.write(memoryview(sets[i % len(sets)]).cast("B"))
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


def bench_storage(
    path_dir: str | os.PathLike[str],
    n_sets: int = 200,
    frame_shape: tuple[int, int] = (512, 512),
    n_frames_per_set: int = 9,
    *,
    compressor: str | None = None,
    fsync: bool = True,
    keep: bool = False,
) -> dict[str, Any]:
    """Measure sustained AcquisitionStore write MB/s and plain-file MB/s on the same disk.

    The plain write (one file, fsync at the end) runs before and after the store write;
    the store time covers create .. close (all flushes, fsyncs and metadata included).
    """
    base = Path(path_dir)
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="srlive_bench_", dir=base))
    a, p = _angles_phases(n_frames_per_set)
    h, w = frame_shape
    rng = np.random.default_rng(0)
    # a few distinct random sets (12-bit camera-like data), reused cyclically
    sets = [rng.integers(100, 4096, (a, p, h, w), dtype=np.uint16) for _ in range(4)]
    set_bytes = sets[0].nbytes
    total = set_bytes * n_sets
    try:
        plain_before = _plain_write(work / "plain.bin", sets, n_sets)
        lat = np.empty(n_sets)
        t0 = time.perf_counter()
        store = AcquisitionStore.create(
            work / "bench.zarr",
            frame_shape=(h, w),
            pixel_nm=65.0,
            n_angles=a,
            n_phases=p,
            sr_shape=None,
            sr_pixel_nm=None,
            laser_lines=[488],
            profile={"name": "bench"},
            run={"bench": True},
            compressor=compressor,
            fsync=fsync,
        )
        for t in range(n_sets):
            ts = time.perf_counter()
            meta = [
                {"time_s": ts - t0, "exposure_ms": 10.0, "power_mw_488": 1.0, "slm_pattern": i}
                for i in range(a * p)
            ]
            store.write_set(t, sets[t % len(sets)], meta)
            lat[t] = time.perf_counter() - ts
        store.close()
        store_s = time.perf_counter() - t0
        plain_after = _plain_write(work / "plain.bin", sets, n_sets)
        disk_bytes = sum(f.stat().st_size for f in (work / "bench.zarr").rglob("*") if f.is_file())
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    mb = total / 1e6
    plain_s = (plain_before + plain_after) / 2
    return {
        "path": str(work),
        "frame_shape": [h, w],
        "n_angles": a,
        "n_phases": p,
        "n_sets": n_sets,
        "data_MB": round(mb, 2),
        "store_bytes_on_disk": disk_bytes,
        "compressor": compressor,
        "fsync": fsync,
        "store_MBps": round(mb / store_s, 1),
        "plain_MBps": round(mb / plain_s, 1),
        "plain_MBps_before": round(mb / plain_before, 1),
        "plain_MBps_after": round(mb / plain_after, 1),
        "store_vs_plain": round(plain_s / store_s, 3),
        "write_set_ms": {
            "mean": round(float(lat.mean()) * 1e3, 3),
            "p50": round(float(np.percentile(lat, 50)) * 1e3, 3),
            "p99": round(float(np.percentile(lat, 99)) * 1e3, 3),
            "max": round(float(lat.max()) * 1e3, 3),
        },
        "cpu_count": os.cpu_count(),
        "platform": sys.platform,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print the benchmark result as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("path_dir")
    ap.add_argument("--sets", type=int, default=200)
    ap.add_argument("--shape", type=int, nargs=2, default=(512, 512))
    ap.add_argument("--frames-per-set", type=int, default=9)
    ap.add_argument("--compressor", default=None)
    ap.add_argument("--no-fsync", action="store_true")
    ns = ap.parse_args(argv)
    res = bench_storage(
        ns.path_dir,
        ns.sets,
        tuple(ns.shape),
        ns.frames_per_set,
        compressor=ns.compressor,
        fsync=not ns.no_fsync,
    )
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
