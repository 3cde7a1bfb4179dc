"""Model cards: how a shipped model was made and how well it does, next to its weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from srlive.recon.learned.weights import load_weights


def _table(results: dict[str, Any], methods: list[str], column: str = "data") -> list[str]:
    lines = [
        f"| method | {column} | PSNR (dB) | SSIM | FRC resolution (nm) | confidence |",
        "|---|---|---|---|---|---|",
    ]
    for method in methods:
        for group, m in results.get(method, {}).items():
            conf = m.get("confidence")
            lines.append(
                f"| {method} | {group} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
                f"{m['resolution_nm']:.1f} | {'' if conf is None else f'{conf:.3f}'} |"
            )
    return lines


def training_runs(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The training runs behind a model, first to last (a run may start from earlier weights)."""
    runs = [info]
    while runs[0].get("init_info"):
        runs.insert(0, runs[0]["init_info"])
    return runs


PROJECT_ROOT = Path(__file__).resolve().parents[2]


def shown_path(path: str | Path) -> str:
    """A path as a command in the card shows it: relative to the project when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT)) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def train_command(
    task: str, run: dict[str, Any], out: str | Path, init_from: str | None = None
) -> str:
    """The ``srlive train`` command that reproduces one training run from its settings
    (``init_from``: the weights it starts from, default the path the run recorded)."""
    train = run.get("train", {})
    options = [
        f"--steps {train.get('steps')}",
        f"--batch {train.get('batch')}",
        f"--patch {train.get('patch')}",
        f"--width {train.get('width')}",
        f"--seed {train.get('seed')}",
        f"--lr {train.get('lr')}",
    ]
    if train.get("stem", 1) != 1:
        options.append(f"--stem {train['stem']}")
    if train.get("context_levels"):
        options.append(f"--context-levels {train['context_levels']}")
    if train.get("ssim_weight"):
        options.append(f"--ssim-weight {train['ssim_weight']}")
    if train.get("error_head_only"):
        options.append("--error-head-only")
    sim = run.get("sim", {})
    if "sr_factor" in sim:  # burst models from before the target was an option: the defaults
        options.append(f"--target-factor {sim['sr_factor']:.10g} --still {sim['still']}")
    # runs from before crops were cut from larger fields simulated each pair at the patch's size
    fields = sim.get("field_sizes", [train.get("patch")])
    if not run.get("fine_tune_store"):
        options.append(f"--field-sizes {' '.join(str(f) for f in fields)}")
    init_from = init_from or (shown_path(run["init_from"]) if run.get("init_from") else None)
    if init_from:
        options.append(f"--init-from {init_from}")
    if run.get("fine_tune_store"):
        stores = run["fine_tune_store"]  # one path in runs from before several were taken
        stores = [stores] if isinstance(stores, str) else stores
        options.append(f"--fine-tune {' '.join(shown_path(s) for s in stores)}")
    return f"srlive train {task} {' '.join(options)} --out {shown_path(out)}"


def train_commands(task: str, info: dict[str, Any], out: str | Path) -> list[str]:
    """The commands, in order, that reproduce a model; each earlier run writes the weights
    the next one starts from."""
    runs = training_runs(info)
    final = shown_path(out)
    # an earlier run that wrote the final path (or one another run wrote) gets a file of its
    # own, so the commands run in order without one overwriting, or resuming, another's
    outs: list[str] = []
    for i, run in enumerate(runs[1:], 1):
        path = shown_path(run["init_from"])
        outs.append(
            f"runs/models/{task}-run{i}.safetensors" if path == final or path in outs else path
        )
    outs.append(final)
    inits = [None, *outs[:-1]]
    return [
        train_command(task, run, o, init) for run, o, init in zip(runs, outs, inits, strict=True)
    ]


def _command_lines(commands: list[str]) -> list[str]:
    if len(commands) == 1:
        return [f"- command: `{commands[0]}`"]
    return [
        "- commands, in order (each run starts from the weights the one before wrote):",
        *(f"  {i}. `{c}`" for i, c in enumerate(commands, 1)),
    ]


def _loss_text(train: dict[str, Any]) -> str:
    if train.get("error_head_only"):
        return (
            "0.1 × Laplace negative log-likelihood of the predicted error scale; the error head "
            "alone trained"
        )
    ssim = train.get("ssim_weight")
    extra = f" + {ssim:g} × (1 − SSIM)" if ssim else ""
    return (
        f"image L1 + ½ gradient L1{extra} + 0.1 × Laplace negative log-likelihood of the "
        "predicted error scale"
    )


def _computed_on(evaluation: dict[str, Any], name: str) -> str:
    """Where the evaluation ran the model (older summaries do not say)."""
    run_on = evaluation.get("models", {}).get(name)
    machine = evaluation.get("computed_on")
    return f", {name} run on {run_on} ({machine})" if run_on and machine else ""


def _data_line(task: Any, info: dict[str, Any]) -> str:
    if task.fluctuation:
        return (
            "- simulated data: bursts drawn on the fly by `srlive.learn.fluctuation` from the "
            "project's fluctuation physics (settings and target below)"
        )
    if task.pattern_bands:
        return (
            f"- simulated data: `{json.dumps(info.get('sim'))}` — pairs drawn on the fly by "
            "`srlive.learn.sim_pairs` (design, targets and why below)"
        )
    return (
        f"- simulated data: `{json.dumps(info.get('sim'))}` — pairs drawn on the fly by "
        "`srlive.learn.data` from the project's simulator (targets: ground truth blurred to the "
        "2D-SIM resolution limit, or noise-free widefield for denoising)"
    )


def write_card(
    weights: str | Path,
    out: str | Path | None = None,
    evaluation: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
) -> Path:
    """Write ``<weights>.md`` from the weights' metadata and an evaluation summary.

    ``out`` is the path the training commands write to (default: ``weights``).
    """
    weights = Path(weights)
    _, task, info = load_weights(weights)
    size_mb = weights.stat().st_size / 1e6
    runs = training_runs(info)
    steps = " + ".join(str(run.get("steps")) for run in runs)
    wall = " + ".join(f"{run.get('wall_s')} s" for run in runs)
    machines = [
        f"run {i}: {run['precision']} on {run['machine']}"
        if len(runs) > 1
        else f"{run['precision']} on {run['machine']}"
        for i, run in enumerate(runs, 1)
        if run.get("machine")
    ]
    lines = [
        f"# {task.name}",
        "",
        task.description + ".",
        "",
        "## Training",
        "",
        *_command_lines(train_commands(task.name, info, out or weights)),
        f"- steps: {steps}, wall time {wall} on this project's 2-core CPU machines",
        *([f"- computed in {'; '.join(machines)}"] if machines else []),
        f"- parameters: {info.get('parameters')} ({size_mb:.2f} MB safetensors)",
        f"- final training loss ({_loss_text(info.get('train', {}))}): {info.get('final_loss')}",
        *(
            f"- training settings{f' (run {i})' if len(runs) > 1 else ''}: "
            f"`{json.dumps(run.get('train'))}`"
            for i, run in enumerate(runs, 1)
        ),
        _data_line(task, info),
        "- confidence calibration (predicted relative error on held-in data, median and 90th "
        f"percentile): `{json.dumps(info.get('trust'))}`",
    ]
    if timing:
        lines += ["", "## Inference time per set", "", f"`{json.dumps(timing)}`"]
    if task.fluctuation:  # scored on bursts (stored with the weights), not on SIM fields
        from srlive.learn.fluctuation_card import fluctuation_card_lines

        lines += fluctuation_card_lines(info)
        evaluation = None
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
            f"--size {evaluation['size']} --json`" + _computed_on(evaluation, task.name) + ".",
            "",
            *_table(results, names + baselines),
            "",
            "By structure type (same fields; `er` is never seen in training):",
            "",
            *_table(evaluation.get("by_structure", {}), names + baselines, "structure"),
        ]
    if evaluation and task.pattern_frames:
        from srlive.learn.pattern_card import prior_free_lines, real_data_lines

        if task.pattern_bands:
            from srlive.learn.pattern_card import pattern_card_lines

            lines += pattern_card_lines(task.name, info, evaluation)
        else:  # the first SIM models read raw frames: what the same checks say of them
            if evaluation.get("prior_free"):
                lines += prior_free_lines(task.name, evaluation["prior_free"])
            lines += real_data_lines(task.name, evaluation.get("real_data"))
    path = weights.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path
