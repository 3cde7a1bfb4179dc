"""What the live-pipeline benchmarks share: their session on the simulated microscope, the
model's modality, and the memory and CPU time of this process and the inference process."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from srlive.hardware.microscope import Microscope
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.profiles import Profile

__all__ = [
    "TASK_MODALITY",
    "check_device",
    "cpu_s",
    "live_session",
    "model_modality",
    "peak_rss_mb",
    "proc_cpu_s",
    "proc_status_mb",
    "rounded",
    "rss_mb",
]

TASK_MODALITY = {"dl-sim3": "sim3", "dl-sim9": "sim9", "dl-denoise": "widefield"}


def rss_mb() -> float:
    """Current resident memory of this process (MB)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # not Linux: the peak is the best we have
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def proc_status_mb(pid: int | None, key: str) -> float | None:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of another process, in MB (Linux)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of another process (Linux; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def check_device(device: str) -> str:
    """``cpu`` or ``cuda`` (``auto``: cuda where torch sees one)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available to torch here")
    return device


def model_modality(model: str) -> str:
    from srlive.recon.learned.infer import learned

    task = learned(model, "cpu").task.name
    if task not in TASK_MODALITY:
        raise ValueError(f"{model}: no live modality for a {task} model")
    return TASK_MODALITY[task]


def cpu_s() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    t = os.times()
    return t.user + t.system


def rounded(value: float | None, digits: int = 1) -> float | None:
    """``value`` rounded (None stays None)."""
    return None if value is None else round(value, digits)


def live_session(
    scope: Microscope,
    prof: Profile,
    modality: str,
    model: str,
    exposure: float,
    device: str,
    threads: int,
    out: Path,
    inference: str = "process",
    pin_cpus: bool = False,
    acquisition_nice: int = 0,
) -> LiveSession:
    """A live session of ``model`` on ``modality`` at the profile's default line and power."""
    line = prof.defaults.laser_line
    settings = LiveSettings(modality, line, exposure, {line: prof.defaults.power_mw})
    return LiveSession(
        scope,
        settings,
        out,
        threads=threads,
        device=device,
        reconstructions={modality: model},
        run_info={"benchmark": True},
        inference=inference,
        pin_cpus=pin_cpus,
        acquisition_nice=acquisition_nice,
    )
