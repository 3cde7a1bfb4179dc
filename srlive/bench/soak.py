"""A long run at the camera's top speed through the live pipeline: raw frames acquired
against stored, and the resident memory of this process and the inference process sampled
every second (its growth after warm-up)."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srlive.bench.common import simulated_scope
from srlive.bench.live import (
    check_device,
    live_session,
    model_modality,
    proc_status_mb,
    rss_mb,
)
from srlive.bench.pipeline import add_live_arguments, live_options
from srlive.pipeline.worker import default_threads
from srlive.profiles import load_profile

log = logging.getLogger(__name__)

MAX_SIM_FPS = 100  # what the simulated camera reaches at 512 x 512 on a fast desktop


def bench_soak(
    seconds: float = 600.0,
    size: int = 512,
    model: str = "dl-sim3",
    device: str = "auto",
    threads: int | None = None,
    sample_s: float = 1.0,
    profile: str | None = None,
    out_dir: Path | None = None,
    inference: str = "process",
    pin_cpus: bool = False,
    exposure_ms: float | None = None,
) -> dict[str, Any]:
    """A long run at the camera's top speed: frames acquired vs stored, RSS over time.

    RSS is this process plus the inference process, sampled every ``sample_s`` seconds.
    """
    device = check_device(device)
    threads = default_threads() if threads is None else threads
    modality = model_modality(model)
    prof = load_profile(profile)
    exposure = prof.limits.min_exposure_ms if exposure_ms is None else exposure_ms
    prof.check_exposure(exposure)
    free = shutil.disk_usage(out_dir or tempfile.gettempdir()).free
    need = seconds * MAX_SIM_FPS * size * size * 2
    if free < need:
        log.warning(
            "soak: %.0f GB free where the store goes, up to %.0f GB may be written "
            "(choose another place with --dir)",
            free / 1e9,
            need / 1e9,
        )
    scope = simulated_scope(prof, size)
    samples: list[tuple[float, float, float]] = []  # (t, this process, inference process)
    try:
        with tempfile.TemporaryDirectory(prefix="srlive-soak-", dir=out_dir) as tmp:
            session = live_session(
                scope,
                prof,
                modality,
                model,
                exposure,
                device,
                threads,
                Path(tmp) / "s.zarr",
                inference,
                pin_cpus,
            )
            start = time.perf_counter()
            try:
                session.start(None)
                while (now := time.perf_counter() - start) < seconds:
                    child = proc_status_mb(session.pipeline.inference_pid, "VmRSS") or 0.0
                    samples.append((round(now, 2), round(rss_mb(), 2), round(child, 2)))
                    time.sleep(sample_s)
                session.stop()
                session.wait()
            finally:
                summary = session.close().to_dict()
            wall = time.perf_counter() - start
            disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    finally:
        scope.make_safe()
        scope.core.unloadAllDevices()
    # warm-up: the core's 250 MB sequence buffer and the caches fill during the first
    # tens of seconds (its pages are touched as the camera writes round it once)
    warm_s = min(120.0, max(30.0, 0.1 * seconds))
    after = [s for s in samples if s[0] >= warm_s]
    k = max(5, len(after) // 10)

    def growth_pct(column: Callable[[tuple[float, float, float]], float]) -> float | None:
        """Peak of the last 10 % of samples against the peak of the first 10 % after
        warm-up (peaks, because the model's memory swings with each reconstruction)."""
        if len(after) < 2:
            return None
        first, last = max(map(column, after[:k])), max(map(column, after[-k:]))
        return round((last / first - 1.0) * 100.0, 2) if first else None

    growth = growth_pct(lambda s: s[1] + s[2])
    step = max(1, len(samples) // 120)
    return {
        "benchmark": "soak",
        "inference": inference,
        "model": model,
        "modality": modality,
        "device": device,
        "frame_shape": [size, size],
        "exposure_ms": exposure,
        "seconds": round(wall, 1),
        "raw_frames_acquired": summary["raw_frames_acquired"],
        "raw_frames_stored": summary["raw_frames_stored"],
        "raw_frames_dropped": summary["raw_frames_dropped"],
        "frames_stored_equal_acquired": summary["raw_frames_stored"]
        == summary["raw_frames_acquired"],
        "camera_fps": round(summary["raw_frames_acquired"] / wall, 2),
        "sr_images": summary["sr_images"],
        "sr_skipped": summary["sr_skipped"],
        "store_mb": round(disk / 2**20, 1),
        "warmup_s": warm_s,
        "rss_mb_after_warmup": round(max(s[1] + s[2] for s in after[:k]), 1) if after else None,
        "rss_mb_end": round(max(s[1] + s[2] for s in after[-k:]), 1) if after else None,
        "rss_growth_pct": growth,
        "rss_growth_pct_acquisition_process": growth_pct(lambda s: s[1]),
        "rss_growth_pct_inference_process": growth_pct(lambda s: s[2]),
        "target_growth_lt_5pct": growth is not None and growth < 5.0,
        "rss_samples": samples[::step],
        "latency_ms": summary["pipeline"]["latency_ms"]["to_result"],
        "error": summary["error"],
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_live_arguments(parser, seconds=600.0)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the store goes (default: the temp dir)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_soak(**live_options(args), out_dir=args.dir)
