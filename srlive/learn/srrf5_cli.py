"""``python -m srlive.learn.srrf5_cli train|evaluate``: dl-srrf5 until ``srlive train`` lists it.

``train`` takes the ``srlive train`` options that matter here and calls what
``srlive train`` calls (:func:`~srlive.learn.train.train_model`, then trust calibration and
the card), so ``srlive train dl-srrf5 ...`` with the same options gives the same weights.
``evaluate`` scores a model on held-out prior-free bursts
(:func:`~srlive.learn.fluctuation_eval.evaluate_fluctuation`) and, with ``--write``, stores
the summary in the weights' metadata and rewrites the card.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def _train(args: argparse.Namespace) -> None:
    from srlive.learn.card import write_card
    from srlive.learn.data import SimSettings
    from srlive.learn.infer import calibrate_trust
    from srlive.learn.train import TrainSettings, train_model

    settings = TrainSettings(
        steps=args.steps,
        batch=args.batch,
        patch=args.patch,
        width=args.width,
        seed=args.seed,
        lr=args.lr,
        ssim_weight=args.ssim_weight,
        stem=args.stem,
    )
    sim = SimSettings(field_sizes=tuple(args.field_sizes)) if args.field_sizes else SimSettings()
    meta = train_model("dl-srrf5", args.out, settings, sim, resume=not args.no_resume)
    meta["trust"] = calibrate_trust(args.out)
    write_card(args.out)
    print(json.dumps({"weights": str(args.out), **meta}, indent=2, default=str))


def _evaluate(args: argparse.Namespace, argv: list[str]) -> None:
    from srlive.learn.card import write_card
    from srlive.learn.fluctuation_eval import evaluate_fluctuation
    from srlive.learn.infer import LearnedReconstructor
    from srlive.learn.train import load_weights, machine_description, save_weights

    recon = LearnedReconstructor(args.weights, device="cpu")
    summary = evaluate_fluctuation(recon, args.size, args.fields, progress=True)
    summary["command"] = "python -m srlive.learn.srrf5_cli " + shlex.join(argv)
    summary["machine"] = machine_description()
    if args.write:
        model, task, info = load_weights(recon.path)
        save_weights(model, task, recon.path, {**info, "evaluation": summary})
        write_card(recon.path)
    print(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m srlive.learn.srrf5_cli")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train dl-srrf5 (the options of `srlive train`)")
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--patch", type=int, default=64)
    train.add_argument("--width", type=int, default=24)
    train.add_argument("--stem", type=int, choices=[1, 2], default=1)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--lr", type=float, default=7e-4)
    train.add_argument("--ssim-weight", type=float, default=0.0)
    train.add_argument("--field-sizes", type=int, nargs="+", default=None)
    train.add_argument("--out", type=Path, default=Path("runs/models/dl-srrf5.safetensors"))
    train.add_argument("--no-resume", action="store_true")
    ev = sub.add_parser("evaluate", help="score on held-out prior-free bursts")
    ev.add_argument("--weights", default="dl-srrf5")
    ev.add_argument("--size", type=int, default=96, help="camera pixels per field")
    ev.add_argument("--fields", type=int, default=4, help="fields per structure generator")
    ev.add_argument("--write", action="store_true", help="store in the weights, rewrite card")
    args = parser.parse_args(argv)
    if args.command == "train":
        _train(args)
    else:
        _evaluate(args, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
