"""Shipped and trained model weights: where they are, and rebuilding a model from a file.

Weights are safetensors files written by training (:func:`srlive.learn.train.save_weights`):
the tensors, and in the header the task, the model's configuration and what it was trained
on (JSON). Reading one parses that header and raw tensor bytes: nothing in it runs code.
The shipped weights and their model cards live with the training code that made them
(``srlive/learn/weights``); this module reads them without importing any of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from srlive.recon.learned.models import ModelConfig, SRUNet
from srlive.recon.learned.tasks import TASKS, Task


def load_weights(path: str | Path) -> tuple[SRUNet, Task, dict[str, Any]]:
    """Rebuild a model from a safetensors file written by :func:`save_weights`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        task = TASKS[meta["task"]]
        config = ModelConfig(**json.loads(meta["config"]))
        model = SRUNet(config)
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise ValueError(f"{path}: not a valid srlive model checkpoint ({exc})") from None
    return model.eval(), task, json.loads(meta.get("info", "{}"))


def bf16_supported() -> bool:
    """True where this CPU has native bfloat16 matrix units (AVX-512 BF16 or AMX)."""
    from torch.backends import cpu

    return cpu.get_cpu_capability() in ("AVX512", "AVX512_BF16", "AMX") and cpu_flags() >= {
        "avx512_bf16"
    }


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()
