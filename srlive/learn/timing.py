"""Time per set of a learned model (``srlive bench models`` and the model cards)."""

from __future__ import annotations

import time

import numpy as np
import torch

from srlive.recon.learned.infer import LearnedReconstructor

__all__ = ["time_model"]


def time_model(
    recon: LearnedReconstructor, size: int = 512, repeats: int = 10, trust: bool = True
) -> dict[str, float]:
    """Milliseconds per set (after two warm-up runs) on realistic raw frames."""
    rng = np.random.default_rng(0)
    frames = (100 + rng.poisson(200.0, (recon.frames_per_set, size, size))).astype(np.uint16)
    for _ in range(2):
        recon(frames, trust=trust)
    times = []
    for _ in range(repeats):
        if recon.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recon(frames, trust=trust)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
    }
