"""How fast the simulated camera streams SIM frames through a real Micro-Manager core
(SLM sequence running, laser gated), against exposure + readout, and the CPU per frame."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from srlive.acquisition.modalities import get_modality, slm_images
from srlive.bench.common import positive, simulated_scope
from srlive.profiles import load_profile


def bench_camera(
    size: int = 512,
    seconds: float = 5.0,
    exposure_ms: float = 5.0,
    motion: bool = False,
    profile: str | None = None,
) -> dict[str, Any]:
    """Stream SIM frames (SLM sequence running, laser gated) and report frames/s."""
    prof = load_profile(profile)
    scope = simulated_scope(prof, size, motion)
    core = scope.core
    try:
        line = prof.defaults.laser_line
        scope.set_exposure(exposure_ms)
        scope.set_power(line, prof.defaults.power_mw)
        scope.set_gated(line, True)
        images = slm_images(prof, get_modality("sim9"), line, scope.slm_shape)
        scope.start_slm_sequence(images)
        scope.laser_on(line)
        readout_ms = scope.readout_ms
        core.startContinuousSequenceAcquisition(0.0)
        # warm-up: the first set fills the pattern and fringe caches
        warm_until = time.perf_counter() + 1.0
        frames = 0
        start = None
        while True:
            now = time.perf_counter()
            if start is None and now >= warm_until:
                start, frames, cpu0 = now, 0, time.process_time()
            if start is not None and now - start >= seconds:
                break
            if core.getRemainingImageCount():
                core.popNextImage()
                frames += 1
            else:
                time.sleep(0.0002)
        elapsed = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0  # every thread of this process: camera, noise, loop
        core.stopSequenceAcquisition()
        scope.make_safe()
    finally:
        core.unloadAllDevices()
    fps = frames / elapsed
    limit_fps = 1000.0 / (exposure_ms + readout_ms)
    return {
        "benchmark": "camera",
        "frame_shape": [size, size],
        "structured_illumination": True,
        "sample_motion": motion,
        "exposure_ms": exposure_ms,
        "readout_ms": round(readout_ms, 3),
        "frames": frames,
        "seconds": round(elapsed, 3),
        "fps": round(fps, 2),
        "fps_limit_exposure_plus_readout": round(limit_fps, 2),
        "fraction_of_limit": round(fps / limit_fps, 3),
        "cpu_ms_per_frame": round(1000.0 * cpu_s / frames, 2) if frames else None,
        "cpu_cores": round(cpu_s / elapsed, 3),
        "cpu_count": os.cpu_count(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument("--seconds", type=positive(), default=5.0, help="how long to stream")
    parser.add_argument("--exposure-ms", type=positive(), default=5.0, help="exposure, ms")
    parser.add_argument("--motion", action="store_true", help="live sample dynamics on")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_camera(args.size, args.seconds, args.exposure_ms, args.motion)
