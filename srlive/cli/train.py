"""``srlive train``: train or fine-tune a learned reconstruction, for any or one microscope."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """The ``train`` subcommand and its options."""
    train = sub.add_parser("train", help="train a learned reconstruction on simulated data")
    train.add_argument(
        "model", choices=["dl-sim3", "dl-sim9", "dl-denoise", "dl-wf2sr", "dl-srrf5"]
    )
    train.add_argument("--steps", type=int, default=2000)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--patch", type=int, default=64, help="camera pixels per training crop")
    train.add_argument(
        "--width",
        type=int,
        default=None,
        help="channels of the first U-Net scale (default 24, or the --init-from model's)",
    )
    train.add_argument(
        "--stem",
        type=int,
        choices=[1, 2, 4],
        default=None,
        help="2: fold 2x2 pixels into channels and run the U-Net at half resolution "
        "(a quarter of the compute; default 1, or the --init-from model's)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--lr", type=float, default=7e-4, help="peak learning rate")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="weights file (default: runs/models/MODEL.safetensors)",
    )
    train.add_argument(
        "--ssim-weight",
        type=float,
        default=0.0,
        help="weight of a (1 - SSIM) loss term beside L1 + gradient L1 (default 0)",
    )
    train.add_argument(
        "--init-from",
        default=None,
        metavar="WEIGHTS",
        help="start from these weights (a model name or .safetensors) instead of from scratch",
    )
    train.add_argument(
        "--context-levels",
        type=int,
        default=None,
        metavar="N",
        help="N coarser U-Net levels below the bottleneck: context over hundreds of pixels "
        "(default 0, or the --init-from model's)",
    )
    train.add_argument(
        "--field-sizes",
        type=int,
        nargs="+",
        default=None,
        metavar="PX",
        help="camera pixels of the simulated fields crops are cut from (default 128 256; "
        "a field of the patch's size is one crop)",
    )
    train.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    train.add_argument(
        "--error-head-only",
        action="store_true",
        help="fine-tune only the --init-from model's error head (its confidence): the images "
        "it makes stay bit-identical",
    )
    train.add_argument(
        "--fine-tune",
        type=Path,
        nargs="+",
        default=None,
        metavar="STORE.zarr",
        help="fine-tune the shipped weights on your own acquisitions (SIM models: sim9 stores, "
        "their wiener-sim targets reconstructed once into OUT.targets, then reused)",
    )
    targets = train.add_argument_group("fine-tuning targets on Dask (resumable, reused)")
    targets.add_argument(
        "--workers", type=int, default=None, metavar="N", help="a local cluster of N processes"
    )
    targets.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT", help="a running Dask scheduler"
    )
    burst = train.add_argument_group("burst model (dl-srrf5): its target")
    burst.add_argument(
        "--target-factor",
        type=float,
        default=None,
        metavar="F",
        help="target FWHM = widefield FWHM / F where the dyes fluctuate (default √2)",
    )
    burst.add_argument(
        "--still",
        choices=["absent", "widefield"],
        default=None,
        help="what the target shows of dyes that do not fluctuate (default absent)",
    )
    microscope = train.add_argument_group(
        "one microscope (dl-sim9, dl-sim3): train on the simulator configured as it"
    )
    where = microscope.add_mutually_exclusive_group()
    where.add_argument(
        "--optics",
        type=Path,
        default=None,
        metavar="FILE.yaml",
        help="its optics (SIMOptics fields, with nominal.period_nm): the simulated geometry, "
        "pattern and camera gain narrow to it",
    )
    where.add_argument(
        "--profile", default=None, metavar="P", help="the same from a hardware profile"
    )


def _burst_settings(args: argparse.Namespace, fields: tuple[int, ...] | None) -> Any:
    """dl-srrf5's pairs: the defaults with the given field sizes and target."""
    from dataclasses import replace

    from srlive.learn.fluctuation import BurstSimSettings

    burst = BurstSimSettings()
    if fields:
        burst = replace(burst, field_sizes=fields)
    if args.target_factor is not None:
        if args.target_factor <= 0:
            raise ValueError(f"--target-factor must be > 0, got {args.target_factor}")
        burst = replace(burst, sr_factor=args.target_factor)
    if args.still is not None:
        burst = replace(burst, still=args.still)
    return burst


def _sim_settings(args: argparse.Namespace) -> Any:
    """What the pairs are drawn from: the defaults, other field sizes, or one microscope."""
    from srlive.learn.data import SimSettings

    fields = tuple(args.field_sizes) if args.field_sizes else None
    if (args.target_factor, args.still) != (None, None) and args.model != "dl-srrf5":
        raise ValueError("--target-factor and --still set the target of dl-srrf5")
    if args.model == "dl-srrf5":
        return _burst_settings(args, fields)
    if args.optics is None and args.profile is None:
        return SimSettings(field_sizes=fields) if fields else SimSettings()
    from srlive.recon.learned.tasks import TASKS

    if not TASKS[args.model].pattern_bands:
        raise ValueError(
            "--optics and --profile train the pattern-conditioned models (dl-sim9, dl-sim3)"
        )
    from srlive.learn.sim_pairs import microscope_settings
    from srlive.recon.optics import SIMOptics

    if args.optics is not None:
        optics = SIMOptics.from_file(args.optics)
    else:
        from srlive.profiles import load_profile

        optics = SIMOptics.from_profile(load_profile(args.profile))
    return microscope_settings(optics, fields)


def cmd(args: argparse.Namespace) -> int:
    """``srlive train``: train or fine-tune a model, then calibrate its trust and write its card."""
    from srlive.learn.card import write_card
    from srlive.learn.train import TrainSettings, train_model
    from srlive.learn.trust import calibrate_trust
    from srlive.recon.learned.weights import load_weights
    from srlive.recon.learned.weights_meta import resolve_weights

    out = args.out or Path("runs") / "models" / f"{args.model}.safetensors"
    init = args.init_from or (args.model if args.fine_tune else None)
    init = resolve_weights(init) if init else None
    start = load_weights(init)[0].config if init else None
    settings = TrainSettings(
        steps=args.steps,
        batch=args.batch,
        patch=args.patch,
        width=args.width or (start.width if start else TrainSettings.width),
        seed=args.seed,
        lr=args.lr,
        ssim_weight=args.ssim_weight,
        stem=args.stem or (start.stem if start else TrainSettings.stem),
        context_levels=args.context_levels
        if args.context_levels is not None
        else (start.context_levels if start else 0),
        error_head_only=args.error_head_only,
    )
    meta = train_model(
        args.model,
        out,
        settings,
        sim=_sim_settings(args),
        resume=not args.no_resume,
        init_from=init,
        fine_tune_store=args.fine_tune,
        cluster_workers=args.workers,
        scheduler=args.scheduler,
    )
    meta["trust"] = calibrate_trust(out)
    write_card(out)
    print(json.dumps({"weights": str(out), **meta}, indent=2, default=str))
    return 0
