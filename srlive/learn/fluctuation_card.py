"""The parts of a burst model's card (``dl-srrf5``) that differ from the SIM models' cards."""

from __future__ import annotations

import json
from typing import Any

from srlive.learn.fluctuation import SR_FACTOR, sr_fwhm_nm

METHOD_ROWS = (
    ("dl-srrf5", "dl-srrf5, first 5 frames"),
    ("dl-srrf5 (5 x mean)", "dl-srrf5, 5 copies of those frames' mean (ablation)"),
    ("esrrf-100", "eSRRF, all 100 frames"),
    ("widefield (5)", "widefield, mean of the first 5 frames"),
    ("widefield (100)", "widefield, mean of all 100 frames"),
)

DESIGN = [
    "## Data, target and why",
    "",
    "- input: 5 consecutive raw frames (offset-subtracted, divided by the 99.5th percentile "
    "of their mean, as every srlive model); the network adds their temporal mean, standard "
    "deviation and signed root of the lag-1 autocovariance as input channels "
    "(`ModelConfig.temporal_stats`); output on the 2x grid with a per-pixel error scale "
    "(the confidence channel).",
    f"- target: the ground truth blurred to FWHM = widefield FWHM / √2 ({sr_fwhm_nm():.1f} nm "
    f"at 510 nm, NA 1.49; factor {SR_FACTOR:.3f}), the PSF of the second-order statistics "
    "every fluctuation method builds on. Blurred ground truth, not eSRRF of a long burst: "
    "eSRRF's intensity is non-linear in the dye density (sensitivity power, RGC weighting), "
    "and a network trained on it would learn those artefacts. Each dye counts with its "
    "photons averaged over the 5 input frames (a dye that stayed dark is absent, as from "
    "the data).",
    "- fluctuations, not a widefield prior: 15 % of pairs have dyes that do not blink, 10 % "
    "are given as 5 copies of their frames' mean (no temporal information at all) and 20 % "
    "show a blinking and a non-blinking structure side by side; the target of dyes that do "
    "not fluctuate is their widefield image (what a static signal supports). So the network "
    "may sharpen only where the frames fluctuate, locally. Said plainly: the must-show "
    "ablation's input (5 copies of the mean) is of the kind of the 10 % `frozen` pairs, so "
    "the ablation checks that the network learnt this rule, not that it could not have "
    "learnt a prior; a first run without `frozen` pairs (only static dyes with shot noise) "
    "kept 94 % of its gain on the ablation at step 900 of 4000 and was stopped. Caveat: the "
    "√2 target lies mostly inside the widefield pass band, so the sharpening itself is "
    "deconvolution-like; what the fluctuations decide is where it is supported.",
    "- no shortcut: 65 % of pairs on prior-free layouts (`simulators/fluctuation_fields.py`: "
    "random curved segments of random length, curvature and labelling density; random "
    "points and small clusters; rings and discs of 40-700 nm; stars of 3-12 spokes), the "
    "rest on the simulator's biological structures; per pair random excitation power "
    "(on-fraction and on-time), thermal return rate, dye brightness, background, read "
    "noise and PSF width (emission 470-560 nm). Held out: the `spirals` generator (never "
    "used in training) and seeds from 3e9 (training streams stay below 1e9).",
]


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    """The held-out table: median SSIM per method, overall and per structure generator."""
    kinds = evaluation["kinds"]
    overall, by_kind = evaluation["overall"], evaluation["by_kind"]
    held = ", ".join(evaluation.get("held_out_generators", []))
    lines = [
        "## Evaluation (held-out prior-free structures)",
        "",
        f"{evaluation['fields']} bursts of {evaluation['size']}² camera pixels, 100 frames each "
        f"({evaluation['fields_per_kind']} per generator; `{held}`: a generator never used in "
        f"training; seeds held out), {evaluation['burst']}. Truth: {evaluation['truth']}. "
        "Median SSIM after an affine intensity fit. Command: "
        f"`{evaluation.get('command', '')}` ({evaluation.get('wall_s')} s"
        f"{', ' + evaluation['machine'] if evaluation.get('machine') else ''}).",
        "",
        f"eSRRF: magnification 2 (the 2x grid), macro-pixel correction, offset 100 ADU; the "
        f"best of a sweep over radius × sensitivity × temporal mode on these same fields "
        f"(the most favourable choice for eSRRF): `{evaluation['esrrf_best']}`.",
        "",
        "| method | all | " + " | ".join(kinds) + " |",
        "|---|---|" + "---|" * len(kinds),
    ]
    for key, label in METHOD_ROWS:
        cells = [_cell(overall.get(key))] + [_cell(by_kind[k].get(key)) for k in kinds]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"dl-srrf5 adds {overall['added']:.4f} SSIM over the 5-frame widefield; with the "
        f"fluctuations removed it keeps {overall['kept']:.4f} ({overall['kept_share']:.0%} "
        "of the gain; the must-show asks for at most 50 %). Confidence: "
        f"{overall.get('confidence', float('nan')):.3f} on the 5 frames, "
        f"{overall.get('confidence (5 x mean)', float('nan')):.3f} on the ablation.",
        "",
        "eSRRF sweep (median SSIM over all fields):",
        "",
        "| parameters | SSIM |",
        "|---|---|",
        *(
            f"| {k.removeprefix('esrrf-100 ')} | {v:.4f} |"
            for k, v in overall.items()
            if k.startswith("esrrf-100 ")
        ),
    ]
    return lines


def fluctuation_card_lines(info: dict[str, Any]) -> list[str]:
    """Design notes, the data settings and the stored held-out evaluation of a burst model."""
    lines = ["", *DESIGN, "", f"- data settings: `{json.dumps(info.get('sim'))}`"]
    if info.get("evaluation"):
        lines += ["", *evaluation_lines(info["evaluation"])]
    return lines
