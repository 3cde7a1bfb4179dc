"""What a training run or an evaluation ran on (recorded with its wall times)."""

from __future__ import annotations

import os
from pathlib import Path

from srlive.recon.learned.weights import cpu_flags

__all__ = ["machine_description"]


def machine_description() -> str:
    """CPU model, cores and vector units: what a training run's wall time was measured on."""
    from torch.backends import cpu

    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    units = [
        u
        for flag, u in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))
        if flag in cpu_flags()
    ]
    return ", ".join([name, f"{os.cpu_count()} cores", cpu.get_cpu_capability(), *units])
