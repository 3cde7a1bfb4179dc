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
    ("widefield (noise-free)", "the dyes' widefield image without noise (no fluctuation used)"),
    ("ideal (5)", "the 5 frames' dyes without noise, blurred as the truth (√2)"),
)

INPUT = (
    "- input: 5 consecutive raw frames (offset-subtracted, divided by the 99.5th percentile "
    "of their mean, as every srlive model); the network adds their temporal mean, standard "
    "deviation and signed root of the lag-1 autocovariance as input channels "
    "(`ModelConfig.temporal_stats`); output on the 2x grid with a per-pixel error scale "
    "(the confidence channel)."
)

WHY = [
    "- why only what fluctuates (measured with `python -m srlive.learn.srrf5_cli evaluate "
    "--weights W --size 64 --fields 2`, 10 held-out bursts): the first weights (commit "
    "81dcd1c: dyes that do not fluctuate shown as their widefield image, frozen pairs made of "
    "static dyes) scored 0.9454 against eSRRF-100's 0.9414 but kept 92 % of their gain on "
    "the ablation and scored 0.956 on dyes that never blink: they denoised and deconvolved "
    "the mean image, fluctuations or not. No widefield target for still dyes can pass the "
    "ablation at this truth: the noise-free widefield image scores 0.9079 against the "
    "5-frame mean's 0.8275, 68 % of that gain. Pilots of 800 steps from the first weights "
    "(`srlive train dl-srrf5 --init-from dl-srrf5 --steps 800 --batch 8 --patch 64 --seed 1 "
    "--lr 0.0003 --ssim-weight 0.5 --field-sizes 64 128` plus the target options): "
    "`--target-factor 2 --still widefield` (frozen pairs of blinking dyes) reached 0.937 "
    "against eSRRF-100's 0.948 at the sharper truth and kept 56 % of its gain there; "
    "`--still absent` reached 0.932 against 0.941 and kept none.",
    "- why this width: a 5-frame image misses the dyes that stayed dark during its frames, "
    "which the 100-frame truth holds. A perfect 5-frame image matches the truth best when "
    "blurred to widefield FWHM / 1.2-1.25 (`python -m srlive.learn.srrf5_cli widths "
    "--factors 1.0 1.1 1.15 1.2 1.25 1.3 1.35 1.41 --fields 4`, 20 validation bursts of 96² "
    "that are neither the table's nor the tests': median SSIM 0.960 at 1.0, 0.981 at 1.2, "
    "0.980 at 1.25, 0.970 at √2, eSRRF-100 0.964); the sharpest width within 0.002 of the "
    "best, 1.25, is the target. At √2 the trained model reached about 0.01 below the perfect "
    "5-frame image, level with eSRRF-100 (0.9455 against 0.9519 on the table's 20 bursts). "
    "So dl-srrf5 resolves less than eSRRF-100 (see the sharper truth's column) and matches "
    "the structure better from 20x fewer frames. Training: from scratch at √2 (5000 steps), "
    "3000 steps at a lower learning rate with the SSIM term at 1, then 3000 at width 1.25.",
]

PRIORS = (
    "- no shortcut: 65 % of pairs on prior-free layouts (`simulators/fluctuation_fields.py`: "
    "random curved segments of random length, curvature and labelling density; random "
    "points and small clusters; rings and discs of 40-700 nm; stars of 3-12 spokes), the "
    "rest on the simulator's biological structures; per pair random excitation power "
    "(on-fraction and on-time), thermal return rate, dye brightness, background, read "
    "noise and PSF width (emission 470-560 nm). Held out: the `spirals` generator (never "
    "used in training) and seeds from 3e9 (training streams stay below 1e9)."
)


def design_lines(sim: dict[str, Any]) -> list[str]:
    """What the model sees, what it is trained to show, and why."""
    factor = float(sim.get("sr_factor", SR_FACTOR))
    still = sim.get("still", "widefield")
    fwhm = sr_fwhm_nm(factor=factor)
    target = (
        f"- target: the dyes that fluctuate during the 5 frames, each with its photons "
        f"averaged over them, blurred to FWHM = widefield FWHM / {factor:.3g} ({fwhm:.1f} nm "
        "at 510 nm, NA 1.49; why this width below). Blurred ground truth, not eSRRF of a long "
        "burst: eSRRF's intensity is non-linear in the dye density (sensitivity power, RGC "
        "weighting), and a network trained on it would learn those artefacts. A dye that "
        "stayed dark is absent, as from the data."
    )
    if still == "absent":
        rule = (
            "- what does not fluctuate is absent from the target (the camera background "
            "stays), as from a SOFI cumulant or a TAC2 image: 15 % of pairs have dyes that "
            "never blink (real shot and read noise, no fluctuation), 10 % are blinking dyes "
            "given as 5 copies of their frames' mean (the ablation's kind of input; blinking "
            "dyes, so that the mean's uneven brightness is no cue) and 20 % show a blinking "
            "and a non-blinking structure side by side. So the network shows only what the "
            "frames' fluctuations support, locally; on a burst without fluctuations it shows "
            "nothing, where the first design showed a sharpened widefield image. Like SOFI, "
            "it drops a sample's non-blinking parts (autofluorescence, unswitched dyes): use "
            "eSRRF (AVG) where those must be seen."
        )
    else:
        rule = (
            "- what does not fluctuate (static dyes, frozen sets, one structure of mixed "
            "pairs) is shown at widefield resolution (its image through the optics' PSF)."
        )
    return ["## Data, target and why", "", INPUT, target, rule, *WHY, PRIORS]


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _gain_line(overall: dict[str, Any], suffix: str, truth: str) -> str:
    return (
        f"- against {truth}: dl-srrf5 adds {overall[f'added{suffix}']:.4f} SSIM over the "
        f"5-frame widefield; with the fluctuations removed it keeps "
        f"{overall[f'kept{suffix}']:.4f} ({overall[f'kept_share{suffix}']:.0%} of the gain; "
        "the must-show asks for at most 50 %)"
        + (
            ": below widefield, it shows almost nothing without them."
            if overall[f"kept{suffix}"] < 0
            else "."
        )
    )


def _tracking_lines(evaluation: dict[str, Any]) -> list[str]:
    track = evaluation.get("confidence_tracking")
    if not track:
        return []
    stress = track["stress"]
    overall = evaluation["overall"]
    dim, static = stress["dim"], stress["static"]
    lines = [
        "",
        "| input (same layouts) | SSIM | contrast | confidence |",
        "|---|---|---|---|",
        f"| the 5 frames | {overall['dl-srrf5']:.4f} | {overall.get('contrast', 0):.3f} | "
        f"{overall['confidence']:.3f} |",
        f"| 5 copies of their mean (ablation) | {overall['dl-srrf5 (5 x mean)']:.4f} | "
        f"{overall.get('contrast (5 x mean)', 0):.3f} | {overall['confidence (5 x mean)']:.3f} |",
        f"| dyes 10x dimmer than trained | {dim['dl-srrf5']:.4f} | {dim.get('contrast', 0):.3f} "
        f"| {dim['confidence']:.3f} |",
        f"| dyes that never blink (real noise) | {static['dl-srrf5']:.4f} | "
        f"{static.get('contrast', 0):.3f} | {static['confidence']:.3f} |",
        "",
        "Medians. Contrast: the output's spatial standard deviation over the 5-frame "
        "widefield's, in the output's own units; SSIM's affine fit rescales a faint residual "
        "to full scale, so a small contrast with a fair SSIM means a faint copy of the layout. "
        f"Spearman rank correlation of confidence with SSIM over all {track['rows']} rows "
        f"(held-out, ablation, stress): {track['spearman_confidence_vs_ssim']:.3f}.",
    ]
    return lines


def evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    """The held-out table: median SSIM per method, overall and per structure generator."""
    kinds = evaluation["kinds"]
    overall, by_kind = evaluation["overall"], evaluation["by_kind"]
    held = ", ".join(evaluation.get("held_out_generators", []))
    half = "truth_half" in evaluation
    lines = [
        "## Evaluation (held-out prior-free structures)",
        "",
        f"{evaluation['fields']} bursts of {evaluation['size']}² camera pixels, 100 frames each "
        f"({evaluation['fields_per_kind']} per generator; `{held}`: a generator never used in "
        f"training; seeds held out), {evaluation['burst']}. Truth: {evaluation['truth']}"
        + (f"; last column: {evaluation['truth_half']}" if half else "")
        + ". Median SSIM after an affine intensity fit. Command: "
        f"`{evaluation.get('command', '')}` ({evaluation.get('wall_s')} s"
        f"{', ' + evaluation['machine'] if evaluation.get('machine') else ''}).",
        "",
        f"eSRRF: magnification 2 (the 2x grid), macro-pixel correction, offset 100 ADU; the "
        f"best of a sweep over radius × sensitivity × temporal mode on these same fields "
        f"(the most favourable choice for eSRRF): `{evaluation['esrrf_best']}`"
        + (f" (`{evaluation['esrrf_best_half']}` against the sharper truth)" if half else "")
        + ".",
        "",
        "| method | all | " + " | ".join(kinds) + (" | all, sharper truth |" if half else " |"),
        "|---|---|" + "---|" * (len(kinds) + half),
    ]
    for key, label in METHOD_ROWS:
        cells = [_cell(overall.get(key))] + [_cell(by_kind[k].get(key)) for k in kinds]
        cells += [_cell(overall.get(f"{key}@half"))] if half else []
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", _gain_line(overall, "", "the truth")]
    if half:
        lines.append(_gain_line(overall, "@half", "the sharper truth"))
    lines += _tracking_lines(evaluation)
    lines += [
        "",
        "eSRRF sweep (median SSIM over all fields):",
        "",
        "| parameters | SSIM |" + (" sharper truth |" if half else ""),
        "|---|---|" + ("---|" if half else ""),
    ]
    for key, value in overall.items():
        if key.startswith("esrrf-100 ") and not key.endswith("@half"):
            extra = f" {overall[key + '@half']:.4f} |" if half else ""
            lines.append(f"| {key.removeprefix('esrrf-100 ')} | {value:.4f} |{extra}")
    return lines


def fluctuation_card_lines(info: dict[str, Any]) -> list[str]:
    """Design notes, the data settings and the stored held-out evaluation of a burst model."""
    sim = info.get("sim") or {}
    lines = ["", *design_lines(sim), "", f"- data settings: `{json.dumps(info.get('sim'))}`"]
    if info.get("evaluation"):
        lines += ["", *evaluation_lines(info["evaluation"])]
    return lines
