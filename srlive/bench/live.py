"""What the live-pipeline benchmarks share: their session on the simulated microscope, the
model's modality, and the memory and CPU time of this process and the inference process."""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srlive.hardware.microscope import Microscope
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.pipeline.stream import SRResult
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


WARMUP_S_MAX = 600.0  # the first SR result (and the inference process) must come within this


@dataclass(frozen=True)
class StreamWindow:
    """What a timed live stream did between its first SR result and its stop."""

    start: float  # perf_counter at the first result
    end: float
    frames_start: int  # frames acquired by then
    frames_end: int
    results_start: int  # SR results received by then
    sets_behind: int  # sets completed but not yet reconstructed when the camera stopped


def _stream_after_first_result(
    session: LiveSession, results: list[SRResult], seconds: float, what: str
) -> StreamWindow:
    """Start ``session``, wait for its first SR result (``what`` names it in the error),
    stream ``seconds`` more, then stop and wait for the pipeline to drain."""
    session.start(None)
    deadline = time.perf_counter() + WARMUP_S_MAX
    while not results and time.perf_counter() < deadline:
        time.sleep(0.01)
    if not results:
        raise RuntimeError(f"no {what} within {WARMUP_S_MAX / 60:.0f} minutes")
    start, frames0, n0 = time.perf_counter(), session.engine.stats.frames_acquired, len(results)
    time.sleep(seconds)
    end, frames1 = time.perf_counter(), session.engine.stats.frames_acquired
    behind = session.engine.stats.sets_completed - len(results)
    session.stop()
    session.wait()
    return StreamWindow(start, end, frames0, frames1, n0, behind)


def stream_live(
    scope: Microscope,
    make_session: Callable[[Path], LiveSession],
    seconds: float,
    what: str,
) -> tuple[list[SRResult], StreamWindow, dict[str, Any]]:
    """Run ``make_session(store path)`` (a store in a temporary directory) for ``seconds``
    after its first SR result; the results, the timed window and the run's summary. The
    microscope is made safe and its devices unloaded whatever happens."""
    results: list[SRResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="srlive-bench-") as tmp:
            session = make_session(Path(tmp) / "b.zarr")
            session.events.result.connect(results.append)
            try:
                run = _stream_after_first_result(session, results, seconds, what)
            finally:
                summary = session.close().to_dict()
    finally:
        scope.make_safe()
        scope.core.unloadAllDevices()
    return results, run, summary


def stored_counts(summary: dict[str, Any]) -> dict[str, Any]:
    """A live run's frame and SR counts, as the pipeline benchmarks report them."""
    keys = ("raw_frames_acquired", "raw_frames_stored", "raw_frames_dropped")
    return {k: summary[k] for k in (*keys, "sr_images", "sr_skipped")}


def every_raw_frame_stored(summary: dict[str, Any]) -> bool:
    """No raw frame dropped and every acquired frame in the store."""
    return bool(
        summary["raw_frames_dropped"] == 0
        and summary["raw_frames_stored"] == summary["raw_frames_acquired"]
    )
