"""The typical predicted error of a trained model on held-in data, stored with its weights
(the ``e₉₀`` its confidence divides by), and for pattern models the error a missing pattern
adds (see :mod:`srlive.recon.learned.trust`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srlive.learn.data import make_pair
from srlive.learn.fluctuation import BurstSimSettings
from srlive.learn.sim_pairs import PatternSimSettings, pattern_pair
from srlive.learn.train import save_weights
from srlive.recon.learned.infer import Geometry, LearnedReconstructor, Result, dynamic_range


def _calibration_settings(recon: LearnedReconstructor) -> BurstSimSettings | None:
    """Burst models calibrate on the pairs they are for, dyes that fluctuate (the model's own
    ranges): a static or frozen pair's target is flat, so its relative error says nothing."""
    if not recon.task.fluctuation:
        return None
    names = {f.name for f in dataclasses.fields(BurstSimSettings)}
    known = {k: v for k, v in recon.info.get("sim", {}).items() if k in names}
    known = {k: tuple(v) if isinstance(v, list) else v for k, v in known.items()}
    return BurstSimSettings(**{**known, "static_fraction": 0.0, "frozen_fraction": 0.0})


def pair_recon(recon: LearnedReconstructor, info: dict[str, Any]) -> LearnedReconstructor:
    """The model judged against a simulated pair's own microscope (pattern models' pairs
    come from random microscopes)."""
    g = info.get("geometry")
    if g is None:
        return recon
    return recon.with_geometry(Geometry(g.pixel_nm, g.na, g.emission_nm, g.period_nm))


def _relative_error(result: Result, target: np.ndarray) -> float:
    """Mean |output − target| over the output's range: the actual counterpart of the
    predicted error."""
    image = torch.from_numpy(np.ascontiguousarray(result.image))
    return float(np.abs(result.image - target).mean()) / max(dynamic_range(image), 1e-6)


def pattern_missing_error(recon: LearnedReconstructor, n_pairs: int = 16, size: int = 128) -> float:
    """How much error a pattern model's own prediction misses when no pattern is measured.

    Held-in pairs are imaged with and without the pattern (the same sample and microscope);
    over every set whose fringes were all found and every set where none was (no pattern, or
    too dark or too fine to measure), the actual error (against the microscope's SIM limit)
    exceeds the predicted one by more where none was found. The root of that difference of
    mean squares is the error to add for a set with no fringe found
    (:func:`srlive.recon.learned.trust.expected_error`, pro rata for some angles not found).
    """
    known = {f.name for f in dataclasses.fields(PatternSimSettings)}
    sim = {k: tuple(v) if isinstance(v, list) else v for k, v in recon.info["sim"].items()}
    kept: dict[str, Any] = {k: v for k, v in sim.items() if k in known}  # JSON from the weights
    base = PatternSimSettings(**{**kept, "field_sizes": (size,)})
    excess: dict[int, list[float]] = {0: [], 3: []}  # angles found -> actual² − predicted²
    for i in range(n_pairs):
        for no_pattern in (0.0, 1.0):
            settings = dataclasses.replace(base, no_pattern_fraction=no_pattern)
            _, y, info = pattern_pair(size, 710_000_000 + i, settings, recon.task.inputs)
            result = pair_recon(recon, info)(info["frames"] + recon.offset_adu)
            actual = _relative_error(result, y[-1] * info["norm_adu"])
            predicted = result.checks["predicted_error"]
            if info["angles_found"] in excess:
                excess[info["angles_found"]].append(actual**2 - predicted**2)
    if not excess[0] or not excess[3]:
        return 0.0
    return float(np.sqrt(max(float(np.mean(excess[0]) - np.mean(excess[3])), 0.0)))


def calibrate_trust(path: str | Path, n_pairs: int = 32, size: int = 128) -> dict[str, float]:
    """Typical predicted error on held-in data (new seeds), judged against each pair's own
    microscope, and for pattern models the error a missing pattern adds
    (:func:`pattern_missing_error`); stored with the weights."""
    recon = LearnedReconstructor(path, device="cpu")
    settings = _calibration_settings(recon)
    errors = []
    for i in range(n_pairs):
        x, _, info = make_pair(recon.task, size, seed=700_000_000 + i, settings=settings)
        frames = info["frames"] if recon.task.pattern_bands else x * info["norm_adu"]
        result = pair_recon(recon, info)(frames + recon.offset_adu)
        errors.append(result.checks.get("predicted_error", math.nan))
    trust = {
        "predicted_error_p50": float(np.nanmedian(errors)),
        "predicted_error_p90": float(np.nanpercentile(errors, 90)),
        "pairs": n_pairs,
    }
    # Module.to(memory_format=...) is documented; torch's stubs lack that overload
    contiguous = recon.model.cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    if recon.task.pattern_bands and recon.has_uncertainty:
        trust["pattern_missing_error"] = pattern_missing_error(recon, size=size)
    save_weights(
        contiguous,
        recon.task,
        Path(path),
        {**recon.info, "trust": trust},
    )
    return trust
