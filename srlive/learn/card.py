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


def _stages(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The training runs behind a model, first to last (a run may start from earlier weights)."""
    stages = [info]
    while stages[0].get("init_info"):
        stages.insert(0, stages[0]["init_info"])
    return stages


def _command_lines(commands: list[str]) -> list[str]:
    if len(commands) == 1:
        return [f"- command: `{commands[0]}`"]
    return [
        "- commands, in order (each run starts from the weights the one before wrote):",
        *(f"  {i}. `{c}`" for i, c in enumerate(commands, 1)),
    ]


def _loss_text(train: dict[str, Any]) -> str:
    ssim = train.get("ssim_weight")
    extra = f" + {ssim:g} × (1 − SSIM)" if ssim else ""
    return f"image L1 + ½ gradient L1{extra} + 0.1 × Laplace negative log-likelihood of the "


def write_card(
    weights: str | Path,
    commands: str | list[str],
    evaluation: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
) -> Path:
    """Write ``<weights>.md`` from the weights' metadata and an evaluation summary."""
    weights = Path(weights)
    _, task, info = load_weights(weights)
    size_mb = weights.stat().st_size / 1e6
    commands = [commands] if isinstance(commands, str) else list(commands)
    stages = _stages(info)
    steps = " + ".join(str(st.get("steps")) for st in stages)
    wall = " + ".join(f"{st.get('wall_s')} s" for st in stages)
    lines = [
        f"# {task.name}",
        "",
        task.description + ".",
        "",
        "## Training",
        "",
        *_command_lines(commands),
        f"- steps: {steps}, wall time {wall} on this project's 2-core CPU machine",
        f"- parameters: {info.get('parameters')} ({size_mb:.2f} MB safetensors)",
        f"- final training loss ({_loss_text(info.get('train', {}))}"
        f"predicted error scale): {info.get('final_loss')}",
        *(
            f"- training settings{f' (run {i})' if len(stages) > 1 else ''}: "
            f"`{json.dumps(st.get('train'))}`"
            for i, st in enumerate(stages, 1)
        ),
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
