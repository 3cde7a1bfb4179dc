"""Wiener SIM reconstruction time per 9-frame set on simulated microtubules, calibration
time, and the FRC resolution of widefield and Wiener SIM on the same sample."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from simulators.imaging import default_sim_patterns, simulate_sim_stack
from simulators.samples import make_sample
from srlive.bench.common import positive
from srlive.recon.resolution import frc_resolution_nm
from srlive.recon.wiener_sim import WienerSIM


def bench_wiener(size: int = 512, repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """Calibrate once, then time ``repeats`` reconstructions of a ``size``² set.

    Also reports the FRC resolution of widefield and Wiener SIM on the same simulated
    microtubules (two independent noise realisations each).
    """
    sample = make_sample("microtubules", (2 * size, 2 * size), 32.5, seed=seed, motion=False)
    patterns = default_sim_patterns(fov_nm=(size * 65.0, size * 65.0))
    raw, raw2 = (
        simulate_sim_stack(sample.density(), patterns, rng=np.random.default_rng(s))
        for s in (seed, seed + 1)
    )
    recon = WienerSIM((size, size), 65.0, 1.49, 510.0)
    start = time.perf_counter()
    recon.calibrate(raw)
    calibration_ms = (time.perf_counter() - start) * 1000
    for _ in range(3):
        recon.reconstruct(raw)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        recon.reconstruct(raw)
        times.append((time.perf_counter() - start) * 1000)
    sim_nm = frc_resolution_nm(recon.reconstruct(raw), recon.reconstruct(raw2), 32.5)
    wf_nm = frc_resolution_nm(recon.widefield_upsampled(raw), recon.widefield_upsampled(raw2), 32.5)
    return {
        "benchmark": "recon",
        "method": "wiener-sim",
        "frames_per_set": 9,
        "frame_shape": [size, size],
        "output_shape": [2 * size, 2 * size],
        "repeats": repeats,
        "ms_mean": round(float(np.mean(times)), 2),
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
        "calibration_ms": round(calibration_ms, 1),
        "frc_resolution_nm": {
            "widefield": round(wf_nm, 1),
            "wiener_sim": round(sim_nm, 1),
            "improvement": round(wf_nm / sim_nm, 3),
        },
        "cpu_count": os.cpu_count(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument("--repeats", type=positive(int), default=20, help="timed reconstructions")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_wiener(size=args.size, repeats=args.repeats)
