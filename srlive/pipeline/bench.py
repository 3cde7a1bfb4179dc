"""Benchmarks of the live pipeline: model-only against end-to-end, and a long soak.

Both stream the simulated camera at its top speed (the profile's shortest exposure, hardware
sequencing) through the real UniMMCore devices, into a temporary OME-Zarr store.

* ``bench_pipeline``: the reconstruction callable the pipeline runs (same model, device,
  threads and confidence computation), timed alone on real camera sets (model-only), then the
  whole pipeline (camera → ring → store writer + inference, latest wins) for ``seconds``.
* ``bench_soak``: the pipeline for a long time; raw frames acquired against stored, and the
  resident memory sampled every second (growth after warm-up).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from srlive.acquisition.engine import Engine
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.acquisition.plan import repeated_sets
from srlive.acquisition.session import LiveSession, LiveSettings
from srlive.acquisition.writer import ModelReconstructor
from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.pipeline.stream import SRResult
from srlive.pipeline.worker import default_threads, set_torch_threads
from srlive.profiles import Profile, load_profile

log = logging.getLogger(__name__)

TASK_MODALITY = {"dl-sim3": "sim3", "dl-sim9": "sim9", "dl-denoise": "widefield"}
MAX_SIM_FPS = 100  # what the simulated camera reaches at 512 x 512 on a fast desktop
WARMUP_RESULTS = 2  # results before the measurement window (lazy initialisation, caches)


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


def _proc_status_mb(pid: int | None, key: str) -> float | None:
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


def _proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of another process (Linux; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available to torch here")


def _model_modality(model: str) -> str:
    from srlive.learn.infer import learned

    task = learned(model, "cpu").task.name
    if task not in TASK_MODALITY:
        raise ValueError(f"{model}: no live modality for a {task} model")
    return TASK_MODALITY[task]


def _scope(profile: Profile, size: int) -> Microscope:
    scope = connect(profile)
    hub = profile.roles.simulator_hub
    if hub:
        scope.core.setProperty(hub, "FrameSize", size)
        scope.core.setProperty(hub, "Motion", "Off")
    return scope


def _camera_sets(scope: Microscope, modality: str, exposure: float, n: int) -> list[np.ndarray]:
    """``n`` real sets from the camera (inputs of the model-only timing)."""
    prof = scope.profile
    mod = get_modality(modality)
    line, power = prof.defaults.laser_line, prof.defaults.power_mw
    images = tuple(slm_images(prof, mod, line, scope.slm_shape)) if scope.has_slm else ()
    sets: list[np.ndarray] = []
    engine = Engine(scope)
    engine.events.set_complete.connect(lambda plan, frames, metas: sets.append(frames.copy()))
    engine.run(repeated_sets(mod, line, power, exposure, images, n))
    return sets


def _time_model(
    recon: Callable[[np.ndarray], Any], sets: list[np.ndarray], seconds: float, threads: int
) -> dict[str, Any]:
    """Model-only: the reconstruction callable on real sets, back to back, on its own thread."""
    out: dict[str, Any] = {}

    def work() -> None:
        previous = set_torch_threads(threads)
        try:
            for frames in sets[:2]:  # warm-up
                recon(frames)
            times = []
            start = time.perf_counter()
            while time.perf_counter() - start < seconds or len(times) < 5:
                t0 = time.perf_counter()
                recon(sets[len(times) % len(sets)])
                times.append((time.perf_counter() - t0) * 1000.0)
            elapsed = time.perf_counter() - start
            out.update(
                calls=len(times),
                seconds=round(elapsed, 3),
                sets_per_s=round(len(times) / elapsed, 4),
                ms_median=round(statistics.median(times), 2),
                ms_p99=round(float(np.percentile(times, 99)), 2),
                threads=threads,
            )
        finally:
            set_torch_threads(previous)

    thread = threading.Thread(target=work, name="srlive-bench-model")
    thread.start()
    thread.join()
    return out


def _readout_ms(scope: Microscope) -> float:
    cam = scope.profile.roles.camera
    if scope.core.hasProperty(cam, "ReadoutTime"):
        return float(scope.core.getProperty(cam, "ReadoutTime"))
    return 0.0


class _Window:
    """Results and counters between the end of warm-up and the end of the measurement."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.results: list[SRResult] = []
        self.all = 0
        self.start: float | None = None
        self.end: float | None = None
        self.frames0 = self.frames1 = 0
        self.cpu0 = self.cpu1 = 0.0
        self.child_cpu0 = self.child_cpu1 = 0.0
        self.child_peak_mb: float | None = None
        self.started = threading.Event()
        session.events.result.connect(self.on_result)

    def on_result(self, result: SRResult) -> None:
        self.all += 1
        now = result.stamps["result_ready"]
        if self.start is None:
            if self.all >= WARMUP_RESULTS:
                self.start = now
                self.frames0 = self.session.engine.stats.frames_acquired
                self.cpu0 = _cpu_s()
                self.child_cpu0 = _proc_cpu_s(self.session.pipeline.inference_pid)
                self.started.set()
        elif self.end is None:
            self.results.append(result)

    def close(self) -> None:
        self.end = time.perf_counter()
        self.frames1 = self.session.engine.stats.frames_acquired
        self.cpu1 = _cpu_s()
        pid = self.session.pipeline.inference_pid
        self.child_cpu1 = _proc_cpu_s(pid)
        self.child_peak_mb = _proc_status_mb(pid, "VmHWM")


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def bench_pipeline(
    device: str = "cpu",
    size: int = 512,
    model: str = "dl-sim3",
    seconds: float = 30.0,
    threads: int | None = None,
    model_seconds: float | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Model-only vs end-to-end SR throughput, latency percentiles, drops, peak memory."""
    _check_device(device)
    threads = default_threads() if threads is None else threads
    modality = _model_modality(model)
    prof = load_profile(profile)
    exposure = prof.limits.min_exposure_ms  # the camera's top speed
    scope = _scope(prof, size)
    try:
        frame_period_ms = exposure + _readout_ms(scope)
        sets = _camera_sets(scope, modality, exposure, 4)
        recon = ModelReconstructor(model, scope.camera_offset_adu, device)
        model_s = model_seconds if model_seconds is not None else min(20.0, seconds / 2)
        model_only = _time_model(recon, sets, model_s, threads)
        all_threads = os.cpu_count() or 1
        model_all = (
            _time_model(recon, sets, model_s, all_threads) if all_threads != threads else None
        )
        del sets
        if device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        with tempfile.TemporaryDirectory(prefix="srlive-bench-") as tmp:
            e2e, summary = _run_session(
                scope, prof, modality, model, exposure, device, threads, seconds, Path(tmp)
            )
    finally:
        scope.make_safe()
        scope.core.unloadAllDevices()
    result_ms = e2e.pop("_to_result")
    ratio = e2e["sr_per_s"] / model_only["sets_per_s"] if model_only["sets_per_s"] else None
    bound = 1.5 * model_only["ms_median"] + frame_period_ms
    p99 = _pct(result_ms, 99)
    out: dict[str, Any] = {
        "benchmark": "pipeline",
        "device": device,
        "model": model,
        "modality": modality,
        "frame_shape": [size, size],
        "exposure_ms": exposure,
        "frame_period_ms": round(frame_period_ms, 3),
        "inference_threads": threads,
        "cpu_count": os.cpu_count(),
        "model_only": model_only,
        "model_only_all_threads": model_all,
        "end_to_end": e2e,
        "end_to_end_vs_model_only": round(ratio, 3) if ratio is not None else None,
        "latency_exposure_end_to_result_ms": {
            "p50": _pct(result_ms, 50),
            "p99": p99,
            "max": round(max(result_ms), 2) if result_ms else None,
            "n": len(result_ms),
        },
        "latency_bound_ms_1.5x_model_plus_frame": round(bound, 2),
        "targets": {
            "throughput_ratio_ge_0.9": ratio is not None and ratio >= 0.9,
            "p99_le_bound": p99 is not None and p99 <= bound,
        },
        "raw_frames_acquired": summary["raw_frames_acquired"],
        "raw_frames_stored": summary["raw_frames_stored"],
        "raw_frames_dropped": summary["raw_frames_dropped"],
        "sr_images": summary["sr_images"],
        "sr_skipped": summary["sr_skipped"],
        "latency_stages_ms": summary["pipeline"]["latency_ms"],
        "ring": {k: summary["pipeline"][k] for k in ("ring_slots", "ring_mb", "ring_waits")},
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if device == "cuda":
        import torch

        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _session(
    scope: Microscope,
    prof: Profile,
    modality: str,
    model: str,
    exposure: float,
    device: str,
    threads: int,
    out: Path,
) -> LiveSession:
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
    )


def _run_session(
    scope: Microscope,
    prof: Profile,
    modality: str,
    model: str,
    exposure: float,
    device: str,
    threads: int,
    seconds: float,
    tmp: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    session = _session(scope, prof, modality, model, exposure, device, threads, tmp / "b.zarr")
    window = _Window(session)
    try:
        session.start(None)
        if not window.started.wait(timeout=600):
            raise RuntimeError("the pipeline produced no result within 10 minutes")
        time.sleep(seconds)
        window.close()
        session.stop()
        session.wait()
    finally:
        summary = session.close()
    duration = (window.end or 0.0) - (window.start or 0.0)
    results = window.results
    to_result = [r.latency_ms["to_result"] for r in results if "to_result" in r.latency_ms]
    e2e = {
        "seconds": round(duration, 3),
        "sr_results": len(results),
        "sr_per_s": round(len(results) / duration, 4) if duration > 0 else 0.0,
        "camera_fps": round((window.frames1 - window.frames0) / duration, 2) if duration else 0,
        "inference_ms_median": _pct([r.recon_ms for r in results], 50),
        "cpu_cores_acquisition_process": round((window.cpu1 - window.cpu0) / duration, 3)
        if duration
        else None,
        "cpu_cores_inference_process": round((window.child_cpu1 - window.child_cpu0) / duration, 3)
        if duration
        else None,
        "inference_process_peak_rss_mb": window.child_peak_mb,
        "_to_result": to_result,
    }
    return e2e, summary


def bench_soak(
    seconds: float = 600.0,
    size: int = 512,
    model: str = "dl-sim3",
    device: str = "cpu",
    threads: int | None = None,
    sample_s: float = 1.0,
    profile: str | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """A long run at the camera's top speed: frames acquired vs stored, RSS over time.

    RSS is this process plus the inference process, sampled every ``sample_s`` seconds.
    """
    _check_device(device)
    threads = default_threads() if threads is None else threads
    modality = _model_modality(model)
    prof = load_profile(profile)
    exposure = prof.limits.min_exposure_ms
    free = shutil.disk_usage(out_dir or tempfile.gettempdir()).free
    need = seconds * MAX_SIM_FPS * size * size * 2
    if free < need:
        log.warning(
            "soak: %.0f GB free where the store goes, up to %.0f GB may be written "
            "(choose another place with --dir)",
            free / 1e9,
            need / 1e9,
        )
    scope = _scope(prof, size)
    samples: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="srlive-soak-", dir=out_dir) as tmp:
            session = _session(
                scope, prof, modality, model, exposure, device, threads, Path(tmp) / "s.zarr"
            )
            start = time.perf_counter()
            pid = session.pipeline.inference_pid
            try:
                session.start(None)
                while (now := time.perf_counter() - start) < seconds:
                    child = _proc_status_mb(pid, "VmRSS") or 0.0
                    samples.append((round(now, 2), round(rss_mb() + child, 2)))
                    time.sleep(sample_s)
                session.stop()
                session.wait()
            finally:
                summary = session.close()
            wall = time.perf_counter() - start
            disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    finally:
        scope.make_safe()
        scope.core.unloadAllDevices()
    # warm-up: the core's 250 MB sequence buffer and the caches fill during the first
    # tens of seconds (its pages are touched as the camera writes round it once)
    warm_s = min(120.0, max(30.0, 0.1 * seconds))
    after = [(t, r) for t, r in samples if t >= warm_s]
    k = max(5, len(after) // 10)
    base = statistics.median(r for _, r in after[:k]) if after else None
    end = statistics.median(r for _, r in after[-k:]) if after else None
    peak_after = max((r for _, r in after), default=None)
    growth = (end / base - 1.0) * 100.0 if base and end else None
    step = max(1, len(samples) // 120)
    return {
        "benchmark": "soak",
        "model": model,
        "modality": modality,
        "device": device,
        "frame_shape": [size, size],
        "exposure_ms": exposure,
        "seconds": round(wall, 1),
        "raw_frames_acquired": summary["raw_frames_acquired"],
        "raw_frames_stored": summary["raw_frames_stored"],
        "raw_frames_dropped": summary["raw_frames_dropped"],
        "frames_stored_equal_acquired": summary["raw_frames_stored"]
        == summary["raw_frames_acquired"],
        "camera_fps": round(summary["raw_frames_acquired"] / wall, 2),
        "sr_images": summary["sr_images"],
        "sr_skipped": summary["sr_skipped"],
        "store_mb": round(disk / 2**20, 1),
        "warmup_s": warm_s,
        "rss_mb_after_warmup": round(base, 1) if base else None,
        "rss_mb_end": round(end, 1) if end else None,
        "rss_mb_peak_after_warmup": peak_after,
        "rss_growth_pct": round(growth, 2) if growth is not None else None,
        "target_growth_lt_5pct": growth is not None and growth < 5.0,
        "rss_samples": samples[::step],
        "latency_ms": summary["pipeline"]["latency_ms"]["to_result"],
        "error": summary["error"],
    }
