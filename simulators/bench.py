"""Benchmark: how fast the simulated camera streams through a real Micro-Manager core."""

from __future__ import annotations

import os
import time
from typing import Any

from srlive.acquisition.modalities import get_modality, slm_images
from srlive.hardware.connect import connect
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
    scope = connect(prof)
    core = scope.core
    try:
        hub = prof.roles.simulator_hub
        if hub:
            core.setProperty(hub, "FrameSize", size)
            core.setProperty(hub, "Motion", "On" if motion else "Off")
        line = prof.defaults.laser_line
        scope.set_exposure(exposure_ms)
        scope.set_power(line, prof.defaults.power_mw)
        scope.set_gated(line, True)
        images = slm_images(prof, get_modality("sim9"), line, scope.slm_shape)
        scope.start_slm_sequence(images)
        scope.laser_on(line)
        readout_ms = float(core.getProperty(prof.roles.camera, "ReadoutTime"))
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
