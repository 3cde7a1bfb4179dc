"""dl-smlm's model card: how it was trained, on what, and how it does on held-out data.

Written beside the weights (``X.md`` for ``X.safetensors``) from the weights' own header
(training command, settings, data ranges, losses) and an evaluation
(:func:`srlive.learn.smlm_eval.evaluate_heldout`, kept in the header too so the card can be
rewritten without evaluating again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srlive.learn.card import shown_path
from srlive.learn.smlm_train import TASK, SMLMTrainSettings


def train_command(
    settings: dict[str, Any], out: str | Path, init_from: str | Path | None = None
) -> str:
    """The ``srlive train`` command that reproduces a run with these settings."""
    default = SMLMTrainSettings()
    parts = [f"srlive train {TASK}"]
    for key in ("steps", "batch", "patch", "lr", "seed"):
        parts.append(f"--{key} {settings.get(key, getattr(default, key))}")
    variation = settings.get("ranges", {}).get("background_variation", 0.0)
    parts.append(f"--background-variation {variation}")
    if init_from:
        parts.append(f"--init-from {shown_path(init_from)}")
    parts.append(f"--out {shown_path(out)}")
    return " ".join(parts)


def _score_rows(evaluation: dict[str, Any]) -> list[str]:
    rows = [
        "| density | dyes on per µm² | Jaccard | recall | precision | lateral RMSE (nm) "
        "| RMS error / predicted σ | within 1σ | within 2σ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("low", "high"):
        entry = evaluation.get(name)
        if not entry:
            continue
        s, c = entry["score"], entry["calibration"]
        rows.append(
            f"| {name} | {entry['emitters_per_um2']} | {s['jaccard']:.3f} | {s['recall']:.3f} "
            f"| {s['precision']:.3f} | {s['rmse_lateral_nm']:.1f} "
            f"| {c.get('rms_normalised_error', 'n/a')} | {c.get('within_1_sigma', 'n/a')} "
            f"| {c.get('within_2_sigma', 'n/a')} |"
        )
    return rows


def _calibration_rows(evaluation: dict[str, Any]) -> list[str]:
    rows = ["| density | predicted σ bin (nm) | RMS predicted σ (nm) | actual RMSE per axis (nm) "
            "| n |", "|---|---|---|---|---|"]  # fmt: skip
    for name in ("low", "high"):
        for b in evaluation.get(name, {}).get("calibration", {}).get("by_predicted_sigma", []):
            rows.append(
                f"| {name} | {b['sigma_nm'][0]}–{b['sigma_nm'][1]} | {b['rms_predicted_nm']} "
                f"| {b['rmse_per_axis_nm']} | {b['n']} |"
            )
    return rows


def card_text(weights: Path, info: dict[str, Any]) -> str:
    """The card's markdown."""
    train = info.get("train", {})
    settings = info.get("settings", {})
    ranges = settings.get("ranges", {})
    evaluation = info.get("evaluation", {})
    signal = evaluation.get("signal", {})
    validation = info.get("validation", {})
    runs = info.get("runs", [])
    size_mb = weights.stat().st_size / 1e6 if weights.exists() else float("nan")
    lines = [
        f"# {TASK}",
        "",
        "Learned single-molecule localisation (in the spirit of DECODE): 3 consecutive raw "
        "frames -> per camera pixel: detection probability, sub-pixel offset, photons, "
        "background, and the predicted σ of x, y and photons (trained by a Gaussian-mixture "
        "negative log-likelihood, so σ is meant to be the actual error).",
        "",
        "## Training",
        "",
        "- commands, in order (each run after the first starts from the weights before it):",
        *[
            f"  {i + 1}. `{run.get('command')}` ({run.get('train', {}).get('steps')} steps, "
            f"{run.get('train', {}).get('seconds')} s)"
            for i, run in enumerate(runs)
        ],
        f"  {len(runs) + 1}. `{info.get('command')}`",
        *(
            [f"- these weights: a copy of the last run's `{shown_path(info['out'])}`"]
            if info.get("out") and shown_path(info["out"]) != shown_path(weights)
            else []
        ),
        f"- steps: {train.get('steps')}, wall time {train.get('seconds')} s on "
        f"{info.get('machine', 'this project’s 2-core CPU machine')} (other jobs running)",
        f"- parameters: {info.get('parameters')} ({size_mb:.2f} MB safetensors)",
        f"- final loss (total, count, places, background): {train.get('final_loss')}",
        f"- architecture: `{json.dumps(settings.get('net', {}))}`",
        "- data: drawn on the fly by `srlive.learn.smlm_data`: dyes on prior-free structures "
        "(random points, segments, rings, stars, spirals of `simulators.fluctuation_fields`, "
        "seeds >= 10,000,000; or uniform), switching events with exponential on-times cut by "
        "the frame boundaries, the simulator's pupil PSF (`simulators.smlm_psf`) with "
        "defocus, sCMOS camera (`simulators.camera_model`).",
        f"- ranges: `{json.dumps(ranges)}`",
        f"- in-focus PSF σ spanned: {info.get('psf_sigma_px')} camera pixels",
        "",
        "## Validation (chooses the detection threshold and the sigma scale)",
        "",
        f"Data: {validation.get('data', 'not validated')}; mean Jaccard of both densities "
        f"by threshold: `{json.dumps(validation.get('mean_jaccard_by_threshold'))}`; "
        f"chosen threshold {info.get('threshold')}; the "
        f"predicted sigmas are multiplied by {info.get('sigma_scale')} (the factor that puts "
        "68.3 % of the validation errors within 1 sigma).",
        "",
        "## Held-out evaluation",
        "",
        f"Data: {evaluation.get('data', 'not evaluated')}. Matching radius 50 nm "
        "(Hungarian per frame). Errors against the truth; σ: the model's predicted "
        "uncertainty per axis.",
        "",
        *_score_rows(evaluation),
        "",
        "Calibration (predicted σ against the actual error, quintiles of predicted σ):",
        "",
        *_calibration_rows(evaluation),
        "",
        "## Does it use the measured signal?",
        "",
        f"- dyes removed (the same burst's background and camera noise only): "
        f"`{json.dumps(signal.get('removed'))}`",
        "- one emitter moved in 10 nm steps, on for one frame between two without it: "
        f"`{json.dumps(signal.get('shift'))}`",
        "",
        "## Confidence",
        "",
        "`srlive.recon.smlm.confidence.smlm_confidence` compares an acquisition with "
        "these ranges (PSF σ in pixels from the optics, measured background, photons, "
        "density) and reports the median predicted uncertainty; `trusted` only when all are "
        "in range. The benchmark (`srlive bench smlm`) reports it for each dataset.",
        "",
    ]
    return "\n".join(lines)


def write_smlm_card(weights: Path, info: dict[str, Any]) -> Path:
    """Write ``weights`` with ``.md`` beside it; returns its path."""
    card = weights.with_suffix(".md")
    card.write_text(card_text(weights, info))
    return card
