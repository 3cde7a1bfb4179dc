"""Benchmark: inference time per set of each learned model (``srlive bench models``).

The SIM models are timed on simulated SIM sets with a real fringe: their time includes
measuring the pattern in each set (blind, as offline reconstruction does) and, for the
3-frame model, also as a live series runs it (``live_with_confidence``: the fringe measured
blind on the first set and every ``REFINE_EVERY_SETS`` sets, in between only each set's
phases).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from srlive.learn.infer import LearnedReconstructor, resolve_weights
from srlive.learn.single_phase_input import FringeTracker
from srlive.learn.train import WEIGHTS_DIR, machine_description


def shipped_models() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def sample_set(recon: LearnedReconstructor, size: int) -> np.ndarray:
    """Raw frames of one set for ``recon``: for a SIM model a simulated SIM set of a textured
    sample with a real fringe at the model's geometry (so its time includes measuring the
    pattern and demodulating by it); otherwise shot-noise frames."""
    if not recon.task.pattern_frames:
        rng = np.random.default_rng(0)
        return (100 + rng.poisson(200.0, (recon.frames_per_set, size, size))).astype(np.uint16)
    from simulators.sim_fields import texture_density
    from srlive.learn.evaluate import make_field

    g = recon.geometry
    field = make_field(
        "texture",
        size,
        seed=1,
        fractions=(1.0,),
        period_nm=g.pattern_period_nm or 195.0,
        density=texture_density((2 * size, 2 * size), 1),
        optics=(g.pixel_nm, g.na, g.emission_nm),
    )
    frames = field.sim9[1.0]
    return frames if recon.frames_per_set == 9 else frames[[0, 3, 6]]


def time_model(
    recon: LearnedReconstructor,
    size: int = 512,
    repeats: int = 10,
    trust: bool = True,
    live: bool = False,
) -> dict[str, float]:
    """Milliseconds per set (after two warm-up runs) on realistic raw frames.

    ``live`` (the 3-frame model): a live series' :class:`FringeTracker` from the first timed
    set on, so ``repeats`` sets include its blind measurements (the first, then every
    ``REFINE_EVERY_SETS``); ``ms_mean`` is the per-set cost with them spread over the sets.
    """
    frames = sample_set(recon, size)
    for _ in range(2):
        recon(frames, trust=trust)
    fringe = FringeTracker() if live else None
    times = []
    for _ in range(repeats):
        if recon.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recon(frames, trust=trust, fringe=fringe)
        times.append((time.perf_counter() - start) * 1000.0)
    result = {
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
    }
    if live:
        result |= {"ms_mean": round(float(np.mean(times)), 2), "sets": repeats}
        result["blind_estimates"] = fringe.blind_estimates
    return result


def bench_models(
    models: list[str] | None = None,
    size: int = 512,
    repeats: int = 10,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Per model: time per set with and without the confidence score; JSON-ready."""
    results = {}
    for name in models or shipped_models():
        recon = LearnedReconstructor(resolve_weights(name), device, precision=precision)
        entry = {
            "device": recon.device.type,
            "precision": recon.precision_name,
            "with_confidence": time_model(recon, size, repeats, trust=True),
            "image_only": time_model(recon, size, repeats, trust=False),
            "parameters": recon.info.get("parameters"),
        }
        if recon.task.inputs == "single-phase":  # live: fringe kept, re-measured blind
            entry["live_with_confidence"] = time_model(recon, size, repeats, live=True)
        results[recon.task.name] = entry
    return {
        "benchmark": "models",
        "frame_shape": [size, size],
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": machine_description(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "models": results,
    }
