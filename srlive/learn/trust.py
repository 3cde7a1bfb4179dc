"""The typical predicted error of a trained model on held-in data, stored with its weights
(the ``e₉₀`` its confidence score divides by; see :mod:`srlive.recon.learned.infer`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from srlive.learn.data import make_pair
from srlive.learn.train import save_weights
from srlive.recon.learned.infer import LearnedReconstructor


def calibrate_trust(path: str | Path, n_pairs: int = 32, size: int = 128) -> dict[str, float]:
    """Typical predicted error on held-in data (new seeds); stored with the weights."""
    recon = LearnedReconstructor(path, device="cpu")
    errors = []
    for i in range(n_pairs):
        x, _, info = make_pair(recon.task, size, seed=700_000_000 + i)
        frames = info["frames"] if recon.task.pattern_bands else x * info["norm_adu"]
        result = recon(frames + recon.offset_adu)
        errors.append(result.checks.get("predicted_error", math.nan))
    trust = {
        "predicted_error_p50": float(np.nanmedian(errors)),
        "predicted_error_p90": float(np.nanpercentile(errors, 90)),
        "pairs": n_pairs,
    }
    save_weights(
        recon.model.cpu().to(memory_format=torch.contiguous_format),
        recon.task,
        Path(path),
        {**recon.info, "trust": trust},
    )
    return trust
