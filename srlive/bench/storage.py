"""OME-Zarr writes against plain sequential writes to the same disk, in the same run.

Every candidate writes the same ``--sets`` SIM sets (9 frames each, by default 200 sets of
512², 944 MB), set by set as a camera delivers them, and makes them durable (fsync) before
its clock stops. Between candidates, and before the first, one plain sequential write of the
same bytes to one file (fsync at the end) measures the disk; each candidate's ratio is its
MB/s of raw data over the mean of the plain writes on either side of it, and every figure is
the median over ``--rounds`` rounds. Candidates:

* ``store``: srlive's AcquisitionStore as it writes live and reconstructed data (tables, CRCs,
  flush and fsync every 0.5 s, completeness marking): the image arrays through zarrs' Rust
  codec pipeline, uncompressed, written with ``O_DIRECT`` where the file system takes it
  (:mod:`srlive.storage.codec_pipeline`). Its figures are also the top-level ``store_*`` keys.
* ``store-page-cache``: the same store writing its image chunks through the page cache.
* ``store-zarr-python``: the same store with zarr-python's own codec pipeline.
* ``store-blosc`` / ``store-zstd``: the store with blosc (lz4, bit-shuffle) or zstd (level 1)
  compression: fewer bytes on disk, more CPU (``bytes_on_disk`` says how many).
* ``zarr-array``: a bare zarr array, one shard per set, zarrs' pipeline as zarrs-python sets
  it up (no tables, no CRC, through the page cache).
* ``tensorstore``, ``acquire-zarr``: the same array written by those libraries, where they
  are installed (anchors: neither keeps srlive's tables, CRCs or flush-time durability).

``--data camera`` writes simulated camera frames (photon and read noise on an offset:
compressible like real data) instead of uniform 12-bit noise (the default, the worst case
for a compressor). ``crc32_MBps`` times the frame checksum the store records.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import shutil
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from srlive.bench.common import positive
from srlive.storage.codec_pipeline import DIRECT_IO_ENV
from srlive.storage.files import IMAGE_PIPELINE, PIPELINE_ENV, frame_crc, fsync_path
from srlive.storage.omezarr import AcquisitionStore

__all__ = ["CANDIDATES", "bench_storage"]

ZARR_PIPELINE = "zarr.core.codec_pipeline.BatchedCodecPipeline"
Writer = Callable[[Path, list[np.ndarray], int], list[float]]  # -> seconds per set


def _angles_phases(n: int) -> tuple[int, int]:
    """Split ``n`` frames per set into (angles, phases), as square as possible."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return a, n // a


def _fsync_tree(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            fsync_path(f)
    for d in {f.parent for f in path.rglob("*")} | {path}:
        fsync_path(d, directory=True)


def _plain(path: Path, sets: list[np.ndarray], n_sets: int) -> list[float]:
    with open(path / "plain.bin", "wb", buffering=0) as f:
        for i in range(n_sets):
            f.write(sets[i % len(sets)].data.cast("B"))
        os.fsync(f.fileno())
    return []


def _store(
    compressor: str | None = None, pipeline: str = IMAGE_PIPELINE, direct_io: bool = True
) -> Writer:
    def write(path: Path, sets: list[np.ndarray], n_sets: int) -> list[float]:
        a, p, h, w = sets[0].shape
        settings = {PIPELINE_ENV: pipeline, DIRECT_IO_ENV: "1" if direct_io else "0"}
        previous = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        try:
            store = AcquisitionStore.create(
                path / "bench.zarr",
                frame_shape=(h, w),
                pixel_nm=65.0,
                n_angles=a,
                n_phases=p,
                laser_lines=[488],
                run={"bench": True},
                compressor=compressor,
            )
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        latency, t0 = [], time.perf_counter()
        for t in range(n_sets):
            ts = time.perf_counter()
            meta = [
                {"time_s": ts - t0, "exposure_ms": 10.0, "power_mw_488": 1.0, "slm_pattern": i}
                for i in range(a * p)
            ]
            store.write_set(t, sets[t % len(sets)], meta)
            latency.append(time.perf_counter() - ts)
        store.close()
        return latency

    return write


def _zarr_array(path: Path, sets: list[np.ndarray], n_sets: int) -> list[float]:
    a, p, h, w = sets[0].shape
    with zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}):
        arr = zarr.create_array(
            LocalStore(path / "array.zarr"),
            shape=(n_sets, a * p, h, w),
            dtype="uint16",
            chunks=(1, 1, h, w),
            shards=(1, a * p, h, w),
            compressors=None,
            fill_value=0,
        )
    for t in range(n_sets):
        arr[t] = sets[t % len(sets)].reshape(a * p, h, w)
    _fsync_tree(path / "array.zarr")
    return []


def _tensorstore(path: Path, sets: list[np.ndarray], n_sets: int) -> list[float]:
    import tensorstore as ts

    a, p, h, w = sets[0].shape
    little = [{"name": "bytes", "configuration": {"endian": "little"}}]
    sharding = {
        "chunk_shape": [1, 1, h, w],
        "codecs": little,
        "index_codecs": [*little, {"name": "crc32c"}],
    }
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path / "ts.zarr")},
        "metadata": {
            "shape": [n_sets, a * p, h, w],
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, a * p, h, w]}},
            "codecs": [{"name": "sharding_indexed", "configuration": sharding}],
        },
        "create": True,
    }
    arr = ts.open(spec).result()
    for t in range(n_sets):
        arr[t].write(sets[t % len(sets)].reshape(a * p, h, w)).result()
    _fsync_tree(path / "ts.zarr")
    return []


def _acquire_zarr(path: Path, sets: list[np.ndarray], n_sets: int) -> list[float]:
    import acquire_zarr as aqz

    a, p, h, w = sets[0].shape
    kinds = aqz.DimensionType
    dims = [
        aqz.Dimension(name=n, kind=k, array_size_px=s, chunk_size_px=c, shard_size_chunks=sh)
        for n, k, s, c, sh in (
            ("t", kinds.TIME, 0, 1, 1),
            ("ap", kinds.OTHER, a * p, 1, a * p),
            ("y", kinds.SPACE, h, h, 1),
            ("x", kinds.SPACE, w, w, 1),
        )
    ]
    array = aqz.ArraySettings(dimensions=dims, data_type=aqz.DataType.UINT16)
    out = path / "acquire.zarr"
    stream = aqz.ZarrStream(aqz.StreamSettings(store_path=str(out), arrays=[array]))
    for t in range(n_sets):
        stream.append(sets[t % len(sets)].reshape(a * p, h, w))
    stream.close()
    _fsync_tree(out)
    return []


CANDIDATES: dict[str, tuple[Writer, str | None]] = {  # name -> (writer, module it needs)
    "store": (_store(), "zarrs"),
    "store-page-cache": (_store(direct_io=False), "zarrs"),
    "store-zarr-python": (_store(pipeline=ZARR_PIPELINE), None),
    "store-blosc": (_store("blosc"), "zarrs"),
    "store-zstd": (_store("zstd"), "zarrs"),
    "zarr-array": (_zarr_array, "zarrs"),
    "tensorstore": (_tensorstore, "tensorstore"),
    "acquire-zarr": (_acquire_zarr, "acquire_zarr"),
}


def _data(kind: str, shape: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Four distinct sets, reused cyclically: uniform 12-bit noise or simulated frames."""
    if kind == "uniform":
        rng = np.random.default_rng(0)
        return [rng.integers(100, 4096, shape, dtype=np.uint16) for _ in range(4)]
    if kind != "camera" or shape[:2] != (3, 3) or shape[2] != shape[3]:
        raise ValueError(f"--data {kind}: uniform, or camera (9 frames per set, square frames)")
    from simulators.stores import simulated_sim_sets

    return list(simulated_sim_sets(4, shape[2]))


def _crc_rates(frames: np.ndarray) -> dict[str, float]:
    """MB/s of the frame checksum: the system zlib's CRC-32 and the one the store uses."""
    rates = {}
    system_zlib: Callable[[np.ndarray], int] = lambda f: zlib.crc32(np.ascontiguousarray(f).data)  # noqa: E731
    for name, crc in (("zlib", system_zlib), ("store", frame_crc)):
        start = time.perf_counter()
        for _ in range(5):
            for frame in frames:
                crc(frame)
        rates[name] = round(5 * frames.nbytes / 1e6 / (time.perf_counter() - start), 1)
    return rates


def _timed(writer: Writer, work: Path, sets: list[np.ndarray], n_sets: int) -> dict[str, Any]:
    """One write into a fresh directory: seconds, CPU seconds, bytes on disk, latencies."""
    target = work / "run"
    target.mkdir()
    cpu0, start = os.times(), time.perf_counter()
    latency = writer(target, sets, n_sets)
    seconds = time.perf_counter() - start
    cpu1 = os.times()
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    shutil.rmtree(target)
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"seconds": seconds, "cpu_s": cpu, "bytes": size, "latency": latency}


def _summary(runs: list[dict[str, Any]], ratios: list[float], mb: float, n: int) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "MBps": round(mb / seconds, 1),
        "vs_plain": round(statistics.median(ratios), 3),
        "vs_plain_rounds": [round(r, 3) for r in ratios],
        "bytes_on_disk": runs[-1]["bytes"],
        "cpu_ms_per_set": round(1e3 * statistics.median(r["cpu_s"] for r in runs) / n, 2),
    }


def bench_storage(
    path_dir: str | os.PathLike[str],
    n_sets: int = 200,
    frame_shape: tuple[int, int] = (512, 512),
    n_frames_per_set: int = 9,
    *,
    candidates: list[str] | None = None,
    rounds: int = 3,
    data: str = "uniform",
) -> dict[str, Any]:
    """Each candidate's MB/s of raw data and ratio to plain writes (see the module doc)."""
    names = [c for c in candidates or CANDIDATES if c in CANDIDATES]
    unknown = set(candidates or ()) - set(CANDIDATES)
    if unknown or not names:
        raise ValueError(f"unknown candidates {sorted(unknown)}; choose from {list(CANDIDATES)}")
    skipped = {n: f"{CANDIDATES[n][1]} is not installed" for n in names if not _has(n)}
    names = [n for n in names if n not in skipped]
    base = Path(path_dir)
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="srlive_bench_", dir=base))
    a, p = _angles_phases(n_frames_per_set)
    sets = _data(data, (a, p, *frame_shape))
    mb = sets[0].nbytes * n_sets / 1e6
    plain: list[float] = []
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in names}
    try:
        for _ in range(rounds):
            before = _timed(_plain, work, sets, n_sets)["seconds"]
            plain.append(before)
            for name in names:
                run = _timed(CANDIDATES[name][0], work, sets, n_sets)
                after = _timed(_plain, work, sets, n_sets)["seconds"]
                plain.append(after)
                runs[name].append(run)
                ratios[name].append((before + after) / 2 / run["seconds"])
                before = after
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {n: _summary(runs[n], ratios[n], mb, n_sets) for n in names}
    plain_s = statistics.median(plain)
    out: dict[str, Any] = {
        "benchmark": "storage",
        "frame_shape": list(frame_shape),
        "n_angles": a,
        "n_phases": p,
        "n_sets": n_sets,
        "data": data,
        "data_MB": round(mb, 2),
        "rounds": rounds,
        "plain_MBps": round(mb / plain_s, 1),
        "plain_MBps_runs": [round(mb / s, 1) for s in plain],
        "candidates": result,
        "skipped": skipped,
        "crc32_MBps": _crc_rates(sets[0].reshape(-1, *frame_shape)),
        "cpu_count": os.cpu_count(),
    }
    if "store" in result:
        lat = np.concatenate([r["latency"] for r in runs["store"]])
        out |= {
            "store_MBps": result["store"]["MBps"],
            "store_vs_plain": result["store"]["vs_plain"],
            "store_bytes_on_disk": result["store"]["bytes_on_disk"],
            "write_set_ms": {
                q: round(float(np.percentile(lat, v)) * 1e3, 3)
                for q, v in (("p50", 50), ("p99", 99), ("max", 100))
            },
        }
    return out


def _has(name: str) -> bool:
    module = CANDIDATES[name][1]
    return module is None or importlib.util.find_spec(module) is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="where to write (the temp dir)")
    parser.add_argument("--sets", type=positive(int), default=200, help="sets per write")
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument("--rounds", type=positive(int), default=3, help="rounds (median)")
    parser.add_argument(
        "--data", choices=["uniform", "camera"], default="uniform", help="the frames written"
    )
    parser.add_argument(
        "--candidates",
        nargs="+",
        choices=list(CANDIDATES),
        default=None,
        metavar="NAME",
        help=f"which to run (default all installed): {', '.join(CANDIDATES)}",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_storage(
        args.dir or tempfile.gettempdir(),
        args.sets,
        (args.size, args.size),
        candidates=args.candidates,
        rounds=args.rounds,
        data=args.data,
    )
