"""Helpers the benchmarks share: the machine they ran on, percentiles, option checks and the
simulated microscope at a chosen frame size."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.profiles import Profile

__all__ = [
    "REPO_ROOT",
    "host_info",
    "load_average",
    "machine_info",
    "pct",
    "positive",
    "simulated_scope",
]

REPO_ROOT = Path(__file__).resolve().parents[2]  # in a checkout: benchmarks/peers, .peers


def machine_info() -> dict[str, Any]:
    """CPU count, model and its vector units (AVX2; bfloat16 ones: AVX-512 BF16, AMX)."""
    model, flags = "unknown", set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "avx2": "avx2" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": bool(flags & {"amx_bf16", "amx_tile", "amx_int8"}),
    }


def host_info() -> dict[str, Any]:
    """:func:`machine_info` and the platform (every result carries it)."""
    import platform

    return {**machine_info(), "platform": platform.platform(terse=True)}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other jobs on the machine), where known."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def pct(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile, rounded to 0.01 (None for no values)."""
    return round(float(np.percentile(values, q)), 2) if values else None


def positive(kind: type = float) -> Any:
    """An argparse type: a positive ``kind`` (a one-line error otherwise)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def simulated_scope(profile: Profile, size: int, motion: bool = False) -> Microscope:
    """The profile's microscope; a simulated one streams ``size``² frames, sample still
    unless ``motion``."""
    scope = connect(profile)
    hub = profile.roles.simulator_hub
    if hub:
        scope.core.setProperty(hub, "FrameSize", size)
        scope.core.setProperty(hub, "Motion", "On" if motion else "Off")
    return scope
