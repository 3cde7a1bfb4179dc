"""``srlive evaluate``: score models and baselines (simulated fields, or acquisitions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from srlive.cli.common import PRECISION_ARG, UsageError


def add_parser(sub: Any) -> None:
    ev = sub.add_parser("evaluate", help="score models and baselines on held-out simulated data")
    ev.add_argument("models", nargs="*", help="model names or weights (default: all shipped)")
    ev.add_argument("--size", type=int, default=128, help="field size in camera pixels")
    ev.add_argument("--fields", type=int, default=2, help="fields per structure type")
    ev.add_argument(
        "--write-cards", action="store_true", help="append the results to the shipped models' cards"
    )
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ev.add_argument("--precision", **PRECISION_ARG)
    ev.add_argument("--json", action="store_true", help="JSON output")
    ev.add_argument(
        "--stores",
        nargs="+",
        type=Path,
        default=None,
        metavar="STORE",
        help="score on these acquisitions against wiener-sim instead (reconstructed on Dask)",
    )
    ev.add_argument("--out", type=Path, default=None, help="--stores: where reconstructions go")
    ev.add_argument("--workers", type=int, default=None, metavar="N", help="--stores: cluster size")
    ev.add_argument("--scheduler", default=None, metavar="ADDR", help="--stores: Dask scheduler")


def cmd(args: argparse.Namespace) -> int:
    if args.stores is not None:
        return _cmd_evaluate_stores(args)
    if args.out is not None or args.workers is not None or args.scheduler is not None:
        raise UsageError("--out, --workers and --scheduler go with --stores")
    from srlive.learn.card import write_card
    from srlive.learn.evaluate import evaluate
    from srlive.recon.learned.infer import LearnedReconstructor, resolve_weights
    from srlive.recon.learned.weights_meta import shipped_image_models

    names = args.models or shipped_image_models()
    models = {}
    for name in names:
        recon = LearnedReconstructor(resolve_weights(name), args.device, precision=args.precision)
        models[recon.task.name] = recon
    summary = evaluate(models, size=args.size, fields_per_structure=args.fields, progress=True)
    if args.write_cards:
        from srlive.learn.machine import machine_description
        from srlive.learn.timing import time_model

        for recon in models.values():
            timing = {
                "frame_shape": [512, 512],
                "device": recon.device.type,
                "precision": recon.precision_name,
                "torch_threads": torch_threads(),
                "machine": machine_description(),
                **time_model(recon, 512, repeats=10),
            }
            if recon.task.inputs == "single-phase":  # as a live series runs it
                timing["live"] = time_model(recon, 512, repeats=10, live=True)
            shipped = Path("srlive/learn/weights") / recon.path.name
            write_card(recon.path, shipped, summary, timing)
    print(json.dumps(summary, indent=2))
    return 0


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _cmd_evaluate_stores(args: argparse.Namespace) -> int:
    from srlive.learn.evaluate_stores import evaluate_stores
    from srlive.recon.learned.weights_meta import shipped_image_models

    if args.out is None:
        raise UsageError("--stores needs --out DIR (the reconstructions are kept there)")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    names = args.models or shipped_image_models()
    summary = evaluate_stores(
        args.stores, names, args.out, workers=args.workers, scheduler=args.scheduler
    )
    print(json.dumps(summary, indent=2))
    return 0
