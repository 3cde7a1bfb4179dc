"""Inference time per set of each learned model, with and without the confidence score
(after two warm-up runs, on realistic raw frames: SIM sets with a real fringe for the SIM
models, see :mod:`srlive.learn.timing`); the 3-frame SIM model also as a live series runs
it (``live_with_confidence``: its fringe measured blind on the first set and every few sets,
in between only each set's phases)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from srlive.bench.common import positive
from srlive.learn.machine import machine_description
from srlive.learn.timing import time_model
from srlive.recon.learned.infer import PRECISIONS, LearnedReconstructor, resolve_weights
from srlive.recon.learned.weights_meta import shipped_image_models


def shipped_models() -> list[str]:
    return shipped_image_models()


def bench_models(
    models: list[str] | None = None,
    size: int = 512,
    repeats: int = 10,
    device: str = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Per model: time per set with and without the confidence score; JSON-ready."""
    results = {}
    for name in models or shipped_models():
        recon = LearnedReconstructor(resolve_weights(name), device, precision=precision)
        entry = {
            "device": recon.device.type,
            "precision": recon.precision_name,
            "with_confidence": time_model(recon, size, repeats, trust=True),
            "image_only": time_model(recon, size, repeats, trust=False),
            "parameters": recon.info.get("parameters"),
        }
        if recon.task.inputs == "single-phase":  # live: fringe kept, re-measured blind
            entry["live_with_confidence"] = time_model(recon, size, repeats, live=True)
        results[recon.task.name] = entry
    return {
        "benchmark": "models",
        "frame_shape": [size, size],
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": machine_description(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "models": results,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="one model (default: all shipped)")
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument("--repeats", type=positive(int), default=20, help="timed runs")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--precision",
        choices=["auto", *PRECISIONS],
        default="auto",
        help="compute precision (auto: bf16 on CPUs with bf16 units, fp16 on CUDA, else fp32)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    models = [args.model] if args.model else None
    return bench_models(models, args.size, args.repeats, args.device, args.precision)
