"""``srlive bench pipeline --modality smlm``: live localisation while the simulated camera
streams SMLM bursts.

Every raw frame must be stored and every set localised (localisation accumulates: no set is
skipped, a slow localiser makes sets wait in the ring instead). Keeping up means the
localiser's throughput (frames localised per second of its compute) is at least the
camera's frame rate, so the backlog stays bounded: reported are the camera's rate, the
localiser's rate, their ratio, the sets still waiting when the camera stopped, how long the
ring made the camera wait, and the latency from a set's last exposure to its rendering.
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

SMLM_LINE, SMLM_POWER_MW = 640, 140.0


def bench_pipeline_smlm(
    size: int = 256,
    seconds: float = 30.0,
    set_frames: int = 100,
    exposure_ms: float = 10.0,
    activation_mw: float = 0.5,
    threads: int | None = None,
    profile: str | None = None,
    inference: str = "process",
) -> dict[str, Any]:
    """Stream ``seconds`` of SMLM bursts (after the first set) through live localisation."""
    threads = default_threads() if threads is None else threads
    prof = load_profile(profile)
    prof.check_exposure(exposure_ms)
    line = SMLM_LINE if SMLM_LINE in prof.laser_lines else prof.defaults.laser_line
    power = {ln: 0.0 for ln in prof.laser_lines}
    power[line] = min(SMLM_POWER_MW, prof.limits.max_power_mw[line])
    activation = prof.smlm.activation_line
    if activation is not None and activation != line:
        power[activation] = min(activation_mw, prof.limits.max_power_mw[activation])
    scope = simulated_scope(prof, size)
    frame_period_ms = scope.readout_ms + exposure_ms

    def make_session(store: Path) -> LiveSession:
        return LiveSession(
            scope,
            LiveSettings("smlm", line, exposure_ms, power),
            store,
            threads=threads,
            run_info={"benchmark": True},
            inference=inference,
            smlm_frames=set_frames,
        )

    results, run, summary = stream_live(scope, make_session, seconds, "localised set")
    start, end, frames0, frames1 = run.start, run.end, run.frames_start, run.frames_end
    measured = results[run.results_start :]
    recon_ms = [r.recon_ms for r in measured]
    to_result = [r.latency_ms["to_result"] for r in measured if "to_result" in r.latency_ms]
    camera_fps = (frames1 - frames0) / (end - start)
    localise_fps = set_frames / (np.median(recon_ms) / 1000.0) if recon_ms else 0.0
    last = results[-1].details
    return {
        "benchmark": "pipeline",
        "modality": "smlm",
        "frame_shape": [size, size],
        "set_frames": set_frames,
        "sr_shape": list(results[0].image.shape),
        "exposure_ms": exposure_ms,
        "frame_period_ms": round(frame_period_ms, 3),
        "laser_mw": {str(k): v for k, v in power.items() if v > 0},
        "inference": inference,
        "inference_threads": threads,
        "cpu_count": os.cpu_count(),
        "seconds": round(end - start, 3),
        "camera_fps": round(camera_fps, 2),
        "nominal_camera_fps": round(1000.0 / frame_period_ms, 2),
        "localised_fps": round(float(localise_fps), 2),
        "localised_over_camera": round(float(localise_fps) / camera_fps, 3) if camera_fps else None,
        "localised_over_nominal": round(float(localise_fps) * frame_period_ms / 1000.0, 3),
        "set_localise_ms": {"p50": pct(recon_ms, 50), "p99": pct(recon_ms, 99)},
        "sets_behind_at_stop": run.sets_behind,
        "latency_exposure_end_to_result_ms": {
            "p50": pct(to_result, 50),
            "p99": pct(to_result, 99),
            "max": round(max(to_result), 2) if to_result else None,
            "n": len(to_result),
        },
        "localizations": last.get("localizations"),
        "locs_per_frame": round(
            last.get("localizations", 0) / max(summary["raw_frames_stored"], 1), 2
        ),
        "precision_nm_last_set": last.get("precision_nm"),
        **stored_counts(summary),
        "targets": {
            "every_raw_frame_stored": every_raw_frame_stored(summary),
            "every_set_localised": summary["sr_skipped"] == 0
            and summary["sr_images"] == summary["sets_completed"],
            "keeps_up": bool(localise_fps >= camera_fps),
        },
        "ring": {
            k: summary["pipeline"][k]
            for k in ("ring_slots", "ring_mb", "ring_waits", "ring_wait_s")
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
