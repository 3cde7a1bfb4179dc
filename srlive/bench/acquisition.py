"""SIM sets per second with hardware sequencing, software timing and the MDA runner.

All three acquire the same 9-frame SIM sets on the same simulated devices in one run:
srlive's engine with hardware sequencing (SLM sequence + camera sequence, laser gated),
srlive's engine with software timing (SLM image, snap, per frame), and pymmcore-plus's own
MDA runner given useq events that carry the SLM images.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import useq

from srlive.acquisition.engine import Engine
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.acquisition.plan import repeated_sets
from srlive.bench.common import positive, simulated_scope
from srlive.profiles import load_profile


def bench_acquisition(
    size: int = 512, n_sets: int = 20, exposure_ms: float = 10.0, profile: str | None = None
) -> dict[str, Any]:
    """Measure SIM sets/s three ways on the same devices; JSON-ready."""
    prof = load_profile(profile)
    scope = simulated_scope(prof, size)
    core = scope.core
    line, power = prof.defaults.laser_line, prof.defaults.power_mw
    results: dict[str, Any] = {}
    try:
        readout_ms = scope.readout_ms
        sim9 = get_modality("sim9")
        images = tuple(slm_images(prof, sim9, line, scope.slm_shape))
        for name, hardware in (("hardware_sequencing", True), ("software_timing", False)):
            engine = Engine(scope, hardware_sequencing=hardware)
            engine.run(repeated_sets(sim9, line, power, exposure_ms, images, 1))  # warm the caches
            engine = Engine(scope, hardware_sequencing=hardware)
            start = time.perf_counter()
            stats = engine.run(repeated_sets(sim9, line, power, exposure_ms, images, n_sets))
            elapsed = time.perf_counter() - start
            results[name] = {
                "sets": stats.sets_completed,
                "frames": stats.frames_acquired,
                "seconds": round(elapsed, 3),
                "sets_per_s": round(stats.sets_completed / elapsed, 3),
            }
        results["pymmcore_plus_mda"] = _bench_mda(scope, images, n_sets, exposure_ms, power, line)
    finally:
        scope.make_safe()
        core.unloadAllDevices()
    limit = 1000.0 / (9 * (exposure_ms + readout_ms))
    hw = results["hardware_sequencing"]["sets_per_s"]
    return {
        "benchmark": "acquisition",
        "modality": "sim9",
        "frame_shape": [size, size],
        "exposure_ms": exposure_ms,
        "readout_ms": readout_ms,
        "sets": n_sets,
        "limit_sets_per_s_exposure_plus_readout": round(limit, 3),
        **results,
        "hardware_fraction_of_limit": round(hw / limit, 3),
        "hardware_vs_mda": round(hw / results["pymmcore_plus_mda"]["sets_per_s"], 3),
        "cpu_count": os.cpu_count(),
    }


def _bench_mda(
    scope, images, n_sets: int, exposure_ms: float, power: float, line: int
) -> dict[str, Any]:
    """pymmcore-plus's MDA runner acquiring the same frames (SLM image per event)."""
    core = scope.core
    scope.set_exposure(exposure_ms)
    scope.set_power(line, power)
    scope.set_gated(line, True)
    scope.laser_on(line)  # gated: lit only while the camera exposes
    slm = scope.roles.slm
    events = [
        useq.MDAEvent(
            index={"t": t, "c": k},
            exposure=exposure_ms,
            slm_image=useq.SLMImage(data=images[k], device=slm),
        )
        for t in range(n_sets)
        for k in range(9)
    ]
    # pymmcore-plus 0.18.1 fails to build its own SLM hardware sequence from SLMImage events
    # (pydantic wants bytes), so its runner is measured on its software-timed path
    core.mda.engine.use_hardware_sequencing = False
    frames = []
    core.mda.events.frameReady.connect(lambda img, *_: frames.append(1))
    core.mda.run(events[:9])  # warm-up
    frames.clear()
    start = time.perf_counter()
    core.mda.run(events)
    elapsed = time.perf_counter() - start
    scope.laser_off(line)
    return {
        "sets": len(frames) // 9,
        "frames": len(frames),
        "seconds": round(elapsed, 3),
        "sets_per_s": round(len(frames) / 9 / elapsed, 3),
        "hardware_sequencing": False,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument("--sets", type=positive(int), default=20, help="SIM sets per method")
    parser.add_argument("--exposure-ms", type=positive(), default=10.0, help="exposure, ms")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_acquisition(args.size, args.sets, args.exposure_ms)
