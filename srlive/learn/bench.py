"""Benchmark: inference time per set of each learned model (``srlive bench models``)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from srlive.learn.train import machine_description
from srlive.recon.learned.infer import LearnedReconstructor, resolve_weights
from srlive.recon.learned.weights_meta import WEIGHTS_DIR


def shipped_models() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def time_model(
    recon: LearnedReconstructor, size: int = 512, repeats: int = 10, trust: bool = True
) -> dict[str, float]:
    """Milliseconds per set (after two warm-up runs) on realistic raw frames."""
    rng = np.random.default_rng(0)
    frames = (100 + rng.poisson(200.0, (recon.frames_per_set, size, size))).astype(np.uint16)
    for _ in range(2):
        recon(frames, trust=trust)
    times = []
    for _ in range(repeats):
        if recon.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        recon(frames, trust=trust)
        times.append((time.perf_counter() - start) * 1000.0)
    return {
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
    }


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
        results[recon.task.name] = {
            "device": recon.device.type,
            "precision": recon.precision_name,
            "with_confidence": time_model(recon, size, repeats, trust=True),
            "image_only": time_model(recon, size, repeats, trust=False),
            "parameters": recon.info.get("parameters"),
        }
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
