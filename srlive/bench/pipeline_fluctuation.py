"""``srlive bench pipeline --modality fluctuation``: rolling-window eSRRF/SOFI while the
simulated camera streams blinking dyes at its top speed.

Every raw frame must be stored (the writer is lossless); windows are reconstructed latest
wins, so on a slow CPU many windows are skipped (counted) while the newest is always the
one shown. Reported: the camera's rate, raw frames acquired / stored, windows reconstructed
and skipped, the reconstruction time of one window and the latency from the end of the
exposure of a window's last frame to its SR image (p50 / p99).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from srlive.bench.common import pct, simulated_scope
from srlive.bench.live import every_raw_frame_stored, peak_rss_mb, stored_counts, stream_live
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.pipeline.worker import default_threads
from srlive.profiles import load_profile
from srlive.recon.fluctuation.method import FluctuationSettings


def bench_pipeline_fluctuation(
    settings: FluctuationSettings | None = None,
    size: int = 256,
    seconds: float = 30.0,
    threads: int | None = None,
    profile: str | None = None,
    inference: str = "process",
    exposure_ms: float | None = None,
) -> dict[str, Any]:
    """Stream ``seconds`` of blinking bursts (after the first window) through the pipeline."""
    settings = settings or FluctuationSettings()
    threads = default_threads() if threads is None else threads
    prof = load_profile(profile)
    exposure = prof.limits.min_exposure_ms if exposure_ms is None else exposure_ms
    prof.check_exposure(exposure)
    scope = simulated_scope(prof, size)
    frame_period_ms = exposure + scope.readout_ms
    line = prof.defaults.laser_line
    live = LiveSettings("fluctuation", line, exposure, {line: prof.defaults.power_mw})

    def make_session(store: Path) -> LiveSession:
        hub = prof.roles.simulator_hub
        if hub and scope.core.hasProperty(hub, "Fluctuation"):
            scope.core.setProperty(hub, "Fluctuation", "On")  # the dyes blink
        return LiveSession(
            scope,
            live,
            store,
            threads=threads,
            reconstructions={"fluctuation": settings.method},
            run_info={"benchmark": True},
            inference=inference,
            fluctuation=settings,
        )

    results, run, summary = stream_live(scope, make_session, seconds, "SR window")
    start, end, frames0, frames1 = run.start, run.end, run.frames_start, run.frames_end
    measured = [r for r in results[1:] if r.stamps["result_ready"] <= end]
    to_result = [r.latency_ms["to_result"] for r in measured if "to_result" in r.latency_ms]
    recon_ms = [r.recon_ms for r in measured]
    camera_fps = (frames1 - frames0) / (end - start)
    windows_per_s = len(measured) / (end - start)
    shape = results[0].image.shape
    return {
        "benchmark": "pipeline",
        "modality": "fluctuation",
        "fluctuation": settings.parameters(),
        "frame_shape": [size, size],
        "sr_shape": list(shape),
        "exposure_ms": exposure,
        "frame_period_ms": round(frame_period_ms, 3),
        "inference": inference,
        "inference_threads": threads,
        "cpu_count": os.cpu_count(),
        "seconds": round(end - start, 3),
        "camera_fps": round(camera_fps, 2),
        "windows_offered_per_s": round(camera_fps / settings.step, 3),
        "windows_per_s": round(windows_per_s, 4),
        "window_recon_ms": {"p50": pct(recon_ms, 50), "p99": pct(recon_ms, 99)},
        "latency_exposure_end_to_result_ms": {
            "p50": pct(to_result, 50),
            "p99": pct(to_result, 99),
            "max": round(max(to_result), 2) if to_result else None,
            "n": len(to_result),
        },
        **stored_counts(summary),
        "targets": {
            "every_raw_frame_stored": every_raw_frame_stored(summary),
            "sr_windows_produced": len(measured) > 0,
        },
        "ring": {k: summary["pipeline"][k] for k in ("ring_slots", "ring_mb", "ring_waits")},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "sr_finite": bool(np.isfinite(results[-1].image).all()),
    }
