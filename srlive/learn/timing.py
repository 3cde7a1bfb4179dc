"""Time per set of a learned model (``srlive bench models`` and the model cards).

The SIM models are timed on simulated SIM sets with a real fringe: their time includes
measuring the pattern in each set (blind, as offline reconstruction does) and, for the
3-frame model, also as a live series runs it (``live=True``: the fringe measured blind on
the first set and every ``REFINE_EVERY_SETS`` sets, in between only each set's phases).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from srlive.recon.learned.infer import LearnedReconstructor
from srlive.recon.learned.single_phase_input import FringeTracker

__all__ = ["sample_set", "time_model"]


def sample_set(recon: LearnedReconstructor, size: int) -> np.ndarray:
    """Raw frames of one set for ``recon``: for a SIM model a simulated SIM set of a textured
    sample with a real fringe at the model's geometry (so its time includes measuring the
    pattern and demodulating by it); otherwise shot-noise frames."""
    if not recon.task.pattern_frames:
        rng = np.random.default_rng(0)
        return (100 + rng.poisson(200.0, (recon.frames_per_set, size, size))).astype(np.uint16)
    from srlive.learn.eval_fields import texture_field

    g = recon.geometry
    field = texture_field(size, g.pattern_period_nm or 195.0, (g.pixel_nm, g.na, g.emission_nm))
    frames = field.sim9[1.0]
    return frames if recon.frames_per_set == 9 else frames[[0, 3, 6]]


def time_model(
    recon: LearnedReconstructor,
    size: int = 512,
    repeats: int = 10,
    trust: bool = True,
    live: bool = False,
) -> dict[str, Any]:
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
    result: dict[str, Any] = {
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
    }
    if fringe is not None:
        result |= {"ms_mean": round(float(np.mean(times)), 2), "sets": repeats}
        result["blind_estimates"] = fringe.blind_estimates
    return result
