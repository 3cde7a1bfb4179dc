"""Model cards: how a shipped model was made and how well it does, next to its weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srlive.learn.train import load_weights


def _table(results: dict[str, Any], methods: list[str], column: str = "data") -> list[str]:
    lines = [
        f"| method | {column} | PSNR (dB) | SSIM | FRC resolution (nm) | confidence |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        for group, m in results.get(method, {}).items():
            conf = m.get("confidence")
            lines.append(
                f"| {method} | {group} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
                f"{m['resolution_nm']:.1f} | {'' if conf is None else f'{conf:.3f}'} |"
            )
    return lines


def write_card(
    weights: str | Path,
    command: str,
    evaluation: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
) -> Path:
    """Write ``<weights>.md`` from the weights' metadata and an evaluation summary."""
    weights = Path(weights)
    _, task, info = load_weights(weights)
    size_mb = weights.stat().st_size / 1e6
    lines = [
        f"# {task.name}",
        "",
        task.description + ".",
        "",
        "## Training",
        "",
        f"- command: `{command}`",
        f"- steps: {info.get('steps')}, wall time {info.get('wall_s')} s on this project's "
        "2-core CPU machine",
        f"- parameters: {info.get('parameters')} ({size_mb:.2f} MB safetensors)",
        "- final training loss (image L1 + ½ gradient L1 + 0.1 × Laplace negative "
        f"log-likelihood of the predicted error scale): {info.get('final_loss')}",
        f"- training settings: `{json.dumps(info.get('train'))}`",
        f"- simulated data: `{json.dumps(info.get('sim'))}` — pairs drawn on the fly by "
        "`srlive.learn.data` from the project's simulator (targets: ground truth blurred to the "
        "2D-SIM resolution limit, or noise-free widefield for denoising)",
        "- confidence calibration (predicted relative error on held-in data, median and 90th "
        f"percentile): `{json.dumps(info.get('trust'))}`",
    ]
    if timing:
        lines += ["", "## Inference time per set", "", f"`{json.dumps(timing)}`"]
    if evaluation:
        results = evaluation["results"]
        names = [m for m in results if m.startswith(task.name + "@")]
        baselines = [m for m in results if not m.startswith("dl-")]
        lines += [
            "",
            "## Evaluation (held-out simulated fields; `held-out` = a structure type never seen "
            "in training)",
            "",
            f"Fields: {evaluation['fields']} of {evaluation['size']}² camera pixels, medians. "
            "Command: "
            f"`srlive evaluate --fields {evaluation['fields_per_structure']} "
            f"--size {evaluation['size']} --json`.",
            "",
            *_table(results, names + baselines),
            "",
            "By structure type (same fields; `er` is never seen in training):",
            "",
            *_table(evaluation.get("by_structure", {}), names + baselines, "structure"),
        ]
    path = weights.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path
