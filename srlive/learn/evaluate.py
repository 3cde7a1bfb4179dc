"""Evaluation on held-out simulated data against ground truth, with classical baselines.

Fields use sample seeds outside the training streams, pattern orientations of their own,
and include a structure type never used in training (ER). Light levels are fractions of the
default acquisition (20 mW × 10 ms with the simulator's default brightness). Every method
is scored after an affine intensity fit to its target (normalised PSNR and SSIM) and by its
FRC resolution against the target (1/7 threshold).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from srlive.learn.data import EMISSION_NM, HELD_OUT_STRUCTURES, HI_NM, NA
from srlive.learn.eval_fields import (
    EVAL_STRUCTURES,
    Field,
    make_field,
    score,
    to_hi_grid,
)
from srlive.learn.machine import machine_description
from srlive.learn.pattern_eval import evaluate_pattern_use
from srlive.recon.learned.infer import LearnedReconstructor
from srlive.recon.wiener_sim import WienerSIM, fourier_upsample

# light levels each model is scored at: the must-show levels, and dl-wf2sr also at the SIM
# models' 10 %, so a widefield-only estimate is compared with them at the same light
MODEL_LIGHT = {
    "dl-sim3": (0.1,),
    "dl-sim9": (0.1,),
    "dl-denoise": (0.05,),
    "dl-wf2sr": (1.0, 0.1),
}


STRESS_PERIOD_NM = 260.0  # a pattern the SIM models never saw (the 640 nm line's period)
STRESS_SATURATION = 40.0  # light fraction that drives the brightest pixels past full well


def evaluate(
    models: dict[str, LearnedReconstructor] | None = None,
    size: int = 128,
    fields_per_structure: int = 2,
    structures: Sequence[str] = EVAL_STRUCTURES,
    stress: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Score baselines and learned models on held-out fields; JSON-ready summary.

    Groups: ``trained`` (structure types used in training, new seeds), ``held-out``
    (structure types never seen), and with ``stress`` the learned models again on trained
    structures with a saturating light level (``saturated``) and a fringe period they were
    not trained for (``wrong-period``, SIM models only) — where confidence must fall.
    ``by_structure`` breaks the results down per structure type.
    """
    from tqdm import tqdm

    # burst models (dl-srrf5) take fluctuation bursts: srlive.learn.fluctuation_eval scores them
    models = {n: m for n, m in (models or {}).items() if not m.task.fluctuation}
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    jobs = [(kind, i) for kind in structures for i in range(fields_per_structure)]
    for kind, i in tqdm(jobs, desc="evaluate", unit="field", disable=not progress):
        seed = zlib.crc32(f"{kind}/{i}".encode()) % 100_000
        field = make_field(kind, size, seed=seed, fractions=(1.0, 0.1, 0.05))
        group = "held-out" if kind in HELD_OUT_STRUCTURES else "trained"
        rows.extend({**row, "group": group} for row in _score_field(field, models, size))
        if stress and group == "trained":
            rows.extend(_stress_rows(kind, seed, models, size))
    summary: dict[str, Any] = {
        "size": size,
        "fields": len(jobs),
        "fields_per_structure": fields_per_structure,
        "held_out_structures": list(HELD_OUT_STRUCTURES),
        "light": "fractions of the default 20 mW x 10 ms (about 1,700 photons at the "
        "brightest camera pixel of a typical field at 100%)",
        "wall_s": round(time.perf_counter() - start, 1),
        "computed_on": machine_description(),
        "models": {name: f"{m.device.type}, {m.precision_name}" for name, m in models.items()},
        "aggregate": "median over fields",
        "results": _aggregate(rows, "group"),
        "by_structure": _aggregate(
            [r for r in rows if r["group"] in ("trained", "held-out")], "kind"
        ),
    }
    sim_models = {n: m for n, m in models.items() if m.task.pattern_frames}
    if sim_models:  # prior-free fields, two microscopes, with the pattern and without it

        use = evaluate_pattern_use(
            sim_models, size=min(size, 96), fields_per_kind=fields_per_structure, progress=progress
        )
        use.pop("rows")
        summary["prior_free"] = use
        from srlive.learn.real_eval import real_data_agreement

        real = {n: m for n, m in models.items() if m.task.super_resolve}
        summary["real_data"] = real_data_agreement(real)
    return summary


def _aggregate(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, dict[str, float]]]:
    """method -> rows[key] -> metric -> median over rows."""
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        entry = table.setdefault(row["method"], {}).setdefault(row[key], {})
        for metric, value in row.items():
            if metric not in ("method", "kind", "group"):
                entry.setdefault(metric, []).append(value)
    return {
        method: {
            name: {m: round(float(np.nanmedian(v)), 4) for m, v in metrics.items()}
            for name, metrics in groups.items()
        }
        for method, groups in table.items()
    }


def _score_field(
    field: Field, models: dict[str, LearnedReconstructor], size: int
) -> list[dict[str, Any]]:
    rows = []

    def add(
        method: str, output: np.ndarray, target: np.ndarray, pixel_nm: float, **extra: float
    ) -> None:
        rows.append(
            {"method": method, "kind": field.kind, **score(output, target, pixel_nm), **extra}
        )

    add(
        "widefield@100%",
        to_hi_grid(fourier_upsample(field.widefield[1.0].astype(np.float32) - 100)),
        field.sr_target,
        HI_NM,
    )
    add(
        "raw-widefield@100% (vs widefield truth)",
        field.widefield[1.0].astype(np.float32),
        field.wf_target,
        2 * HI_NM,
    )
    for f, label in ((1.0, "100%"), (0.1, "10%")):
        wiener = WienerSIM((size, size), 2 * HI_NM, NA, EMISSION_NM)
        wiener.calibrate(field.sim9[f])
        add(
            f"wiener-sim9@{label}",
            to_hi_grid(wiener.reconstruct(field.sim9[f])),
            field.sr_target,
            HI_NM,
        )
    for name, model in models.items():
        for fraction in MODEL_LIGHT.get(name, (1.0,)):
            frames, target, label = _model_input(name, field, fraction)
            result = model(frames)
            pixel = HI_NM if target.shape[0] == 2 * size else 2 * HI_NM
            add(f"{name}@{label}", result.image, target, pixel, confidence=result.confidence)
    return rows


def _model_input(name: str, field: Field, fraction: float) -> tuple[np.ndarray, np.ndarray, str]:
    """(frames, target, light label) of a model on a field at a light fraction."""
    label = f"{fraction:.0%}" if fraction <= 1 else f"{fraction:g}x"
    if name == "dl-sim3":
        return field.sim9[fraction][[0, 3, 6]], field.sr_target, label
    if name == "dl-sim9":
        return field.sim9[fraction], field.sr_target, label
    target = field.wf_target if name == "dl-denoise" else field.sr_target
    return field.widefield[fraction][None], target, label


def _stress_rows(
    kind: str, seed: int, models: dict[str, LearnedReconstructor], size: int
) -> list[dict[str, Any]]:
    """Learned models on inputs unlike their training data: saturated, wrong period."""
    rows = []
    bright = make_field(kind, size, seed=seed, fractions=(STRESS_SATURATION,))
    wrong = make_field(kind, size, seed=seed, fractions=(0.1,), period_nm=STRESS_PERIOD_NM)
    for name, model in models.items():
        cases = [("saturated", bright, model, STRESS_SATURATION)]
        if model.task.pattern_frames:
            geometry = replace(model.geometry, pattern_period_nm=STRESS_PERIOD_NM)
            other = model.with_geometry(geometry)
            cases.append(("wrong-period", wrong, other, 0.1))
        for group, field, recon, fraction in cases:
            frames, target, label = _model_input(name, field, fraction)
            result = recon(frames)
            pixel = HI_NM if target.shape[0] == 2 * size else 2 * HI_NM
            rows.append(
                {
                    "method": f"{name}@{label}",
                    "kind": kind,
                    "group": group,
                    **score(result.image, target, pixel),
                    "confidence": result.confidence,
                }
            )
    return rows
