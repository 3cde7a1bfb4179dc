"""The typical predicted error of a trained model on held-in data, stored with its weights
(the ``e₉₀`` its confidence score divides by; see :mod:`srlive.recon.learned.infer`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from srlive.learn.data import make_pair
from srlive.learn.fluctuation import BurstSimSettings
from srlive.learn.train import save_weights
from srlive.recon.learned.infer import LearnedReconstructor


def _calibration_settings(recon: LearnedReconstructor) -> BurstSimSettings | None:
    """Burst models calibrate on the pairs they are for, dyes that fluctuate (the model's own
    ranges): a static or frozen pair's target is flat, so its relative error says nothing."""
    if not recon.task.fluctuation:
        return None
    names = {f.name for f in dataclasses.fields(BurstSimSettings)}
    known = {k: v for k, v in recon.info.get("sim", {}).items() if k in names}
    known = {k: tuple(v) if isinstance(v, list) else v for k, v in known.items()}
    return BurstSimSettings(**{**known, "static_fraction": 0.0, "frozen_fraction": 0.0})


def calibrate_trust(path: str | Path, n_pairs: int = 32, size: int = 128) -> dict[str, float]:
    """Typical predicted error on held-in data (new seeds); stored with the weights."""
    recon = LearnedReconstructor(path, device="cpu")
    settings = _calibration_settings(recon)
    errors = []
    for i in range(n_pairs):
        x, _, info = make_pair(recon.task, size, seed=700_000_000 + i, settings=settings)
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
