"""The live pipeline: model-only against end-to-end, in alternating rounds.

The simulated camera streams at its top speed (the profile's shortest exposure, hardware
sequencing) through the real UniMMCore devices into a temporary OME-Zarr store. The
reconstruction callable the pipeline runs (same model, device, threads and confidence
computation) is timed alone on a real camera set (model-only), then the whole pipeline
(camera → ring → store writer + inference, latest wins) runs for the same time, in
``rounds`` alternating phases, so a machine whose load changes hits both alike. Reported:
both throughputs and their ratio, latency (exposure end → SR ready) against 1.5 × model time
+ one frame period, raw frames acquired / stored / dropped, CPU cores of both processes,
peak memory. ``--modality fluctuation`` streams blinking bursts through rolling eSRRF/SOFI
windows instead (:mod:`srlive.bench.pipeline_fluctuation`).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
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
from srlive.bench.common import pct, positive, simulated_scope
from srlive.bench.live import (
    check_device,
    cpu_s,
    live_session,
    model_modality,
    peak_rss_mb,
    proc_cpu_s,
    rounded,
)
from srlive.hardware.microscope import Microscope
from srlive.pipeline.cpus import partition
from srlive.pipeline.session import LiveSession
from srlive.pipeline.stream import SRResult
from srlive.pipeline.worker import default_threads, set_torch_threads
from srlive.profiles import load_profile
from srlive.recon.learned.geometry import Geometry
from srlive.recon.streaming import ModelReconstructor


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
            times: list[float] = []
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


def bench_pipeline(
    device: str = "auto",
    size: int = 512,
    model: str = "dl-sim3",
    seconds: float = 30.0,
    threads: int | None = None,
    profile: str | None = None,
    inference: str = "process",
    rounds: int = 3,
    pin_cpus: bool = False,
    acquisition_nice: int = 0,
    exposure_ms: float | None = None,
) -> dict[str, Any]:
    """Model-only vs end-to-end SR throughput, latency percentiles, drops, peak memory.

    The camera streams at the top speed its exposure allows (``exposure_ms``; default the
    profile's shortest, where the rolling readout alone sets the frame rate).

    Both are measured on the pipeline's own inference (same process, threads, callable and
    input set) in ``rounds`` alternating phases of ``seconds / rounds`` each (the model
    alone, then the camera streaming at top speed through the whole pipeline), so a machine
    whose load changes over time affects both alike.
    """
    device = check_device(device)
    threads = default_threads() if threads is None else threads
    modality = model_modality(model)
    prof = load_profile(profile)
    exposure = prof.limits.min_exposure_ms if exposure_ms is None else exposure_ms  # top speed
    prof.check_exposure(exposure)
    phase_s = seconds / rounds
    scope = simulated_scope(prof, size)
    try:
        frame_period_ms = exposure + scope.readout_ms
        sets = _camera_sets(scope, modality, exposure, 2)
        with tempfile.TemporaryDirectory(prefix="srlive-bench-") as tmp:
            store_path = Path(tmp) / "b.zarr"
            session = live_session(
                scope,
                prof,
                modality,
                model,
                exposure,
                device,
                threads,
                store_path,
                inference,
                pin_cpus,
                acquisition_nice,
            )
            bench = _Phases(session, sets[0])
            try:
                bench.time_model(2)  # warm-up: the inference process builds the model
                for _ in range(rounds):
                    bench.model_phase(phase_s)
                    bench.pipeline_phase(phase_s)
                child = session.pipeline.inference_stats()
                pid = session.pipeline.inference_pid
                child["cpus"] = (
                    sorted(os.sched_getaffinity(pid))
                    if pid and hasattr(os, "sched_getaffinity")
                    else None
                )
            finally:
                bench.release()
                summary = session.close().to_dict()
        geometry = Geometry.from_profile(prof, prof.defaults.laser_line)
        recon = ModelReconstructor(model, scope.camera_offset_adu, geometry, device)
        all_threads = os.cpu_count() or 1
        model_all = (
            _time_model(recon, sets, phase_s, all_threads) if all_threads != threads else None
        )
    finally:
        scope.make_safe()
        scope.core.unloadAllDevices()
    model_ms = bench.model_ms
    model_rate = len(model_ms) / bench.model_s if bench.model_s else 0.0
    e2e_rate = len(bench.results) / bench.e2e_s if bench.e2e_s else 0.0
    ratio = e2e_rate / model_rate if model_rate else None
    model_median = statistics.median(model_ms) if model_ms else math.nan
    bound = 1.5 * model_median + frame_period_ms
    to_result = [r.latency_ms["to_result"] for r in bench.results if "to_result" in r.latency_ms]
    p99 = pct(to_result, 99)
    out: dict[str, Any] = {
        "benchmark": "pipeline",
        "device": device,
        "model": model,
        "modality": modality,
        "frame_shape": [size, size],
        "exposure_ms": exposure,
        "frame_period_ms": round(frame_period_ms, 3),
        "inference": inference,
        "inference_threads": threads,
        "cpu_partition": pin_cpus and inference == "process" and partition() is not None,
        "acquisition_nice": acquisition_nice,
        "inference_process_cpus": child.get("cpus"),
        "cpu_count": os.cpu_count(),
        "rounds": rounds,
        "model_only": {
            "calls": len(model_ms),
            "seconds": round(bench.model_s, 3),
            "sets_per_s": round(model_rate, 4),
            "ms_median": round(model_median, 2),
            "ms_p99": pct(model_ms, 99),
            "cpu_cores_inference_process": _cores(bench.model_cpu, bench.model_s),
        },
        "model_only_all_threads_in_process": model_all,
        "end_to_end": {
            "seconds": round(bench.e2e_s, 3),
            "sr_results": len(bench.results),
            "sr_per_s": round(e2e_rate, 4),
            "camera_fps": round(bench.frames / bench.e2e_s, 2) if bench.e2e_s else 0.0,
            "inference_ms_median": pct([r.recon_ms for r in bench.results], 50),
            "cpu_cores_acquisition_process": _cores(bench.parent_cpu, bench.e2e_s),
            "cpu_cores_inference_process": _cores(bench.e2e_cpu, bench.e2e_s),
        },
        "end_to_end_vs_model_only": round(ratio, 3) if ratio is not None else None,
        # the same ratio per CPU-second the inference got: what remains when a busy machine
        # gives the inference process less CPU while the camera streams
        "end_to_end_vs_model_only_per_inference_cpu_s": _per_cpu_ratio(bench),
        "latency_exposure_end_to_result_ms": {
            "p50": pct(to_result, 50),
            "p99": p99,
            "max": round(max(to_result), 2) if to_result else None,
            "n": len(to_result),
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
        "inference_process_peak_rss_mb": rounded(child.get("peak_rss_mb")),
    }
    if device == "cuda":
        out["cuda_peak_mb"] = rounded(child.get("cuda_peak_mb"))
    return out


def _per_cpu_ratio(bench: _Phases) -> float | None:
    if not (bench.model_cpu and bench.e2e_cpu and bench.model_ms):
        return None
    return round((len(bench.results) / bench.e2e_cpu) / (len(bench.model_ms) / bench.model_cpu), 3)


def _cores(cpu_s: float, wall_s: float) -> float | None:
    return round(cpu_s / wall_s, 3) if wall_s else None


class _Phases:
    """Alternating model-only and end-to-end phases on one session's inference."""

    def __init__(self, session: LiveSession, frames: np.ndarray) -> None:
        self.session = session
        pipe = session.pipeline
        session.runner.prepare(session._plans(0, 1)[0])
        self.recon = next(iter(session.writer.series.values())).recon
        self.slot = pipe.ring.claim(len(frames))  # a real camera set, held for the bench
        self.slot.frames[:] = frames
        self.model_ms: list[float] = []
        self.model_s = self.model_cpu = 0.0
        self.results: list[SRResult] = []
        self.e2e_s = self.e2e_cpu = self.parent_cpu = 0.0
        self.frames = 0
        self._phase: list[SRResult] | None = None
        session.events.result.connect(self._on_result)

    def _on_result(self, result: SRResult) -> None:
        if self._phase is not None:
            self._phase.append(result)

    def _run_once(self) -> float:
        pipe = self.session.pipeline
        start = time.perf_counter()
        if pipe._proc is not None:
            pipe._proc.reconstruct(self.recon, self.slot.index, self.slot.n_frames)
        else:
            self.recon(self.slot.frames)
        return (time.perf_counter() - start) * 1000.0

    def time_model(self, n: int) -> list[float]:
        return [self._run_once() for _ in range(n)]

    def model_phase(self, seconds: float) -> None:
        """The reconstruction alone, back to back, where the pipeline runs it."""
        pid = self.session.pipeline.inference_pid
        previous = set_torch_threads(self.session.pipeline.threads) if pid is None else None
        cpu0 = proc_cpu_s(pid) if pid is not None else cpu_s()
        start = time.perf_counter()
        try:
            while time.perf_counter() - start < seconds or not self.model_ms:
                self.model_ms.append(self._run_once())
        finally:
            if pid is None:
                set_torch_threads(previous)
        self.model_s += time.perf_counter() - start
        self.model_cpu += (proc_cpu_s(pid) if pid is not None else cpu_s()) - cpu0

    def pipeline_phase(self, seconds: float) -> None:
        """Camera at top speed through the pipeline; counted from its first result on."""
        session, pipe = self.session, self.session.pipeline
        phase: list[SRResult] = []
        self._phase = phase
        session.start(None)
        deadline = time.perf_counter() + 600
        while not phase and time.perf_counter() < deadline:
            time.sleep(0.005)
        if not phase:
            raise RuntimeError("the pipeline produced no result within 10 minutes")
        pid = pipe.inference_pid
        start = phase[0].stamps["result_ready"]
        frames0, cpu0, child0 = session.engine.stats.frames_acquired, cpu_s(), proc_cpu_s(pid)
        time.sleep(max(0.0, seconds - (time.perf_counter() - start)))
        end = time.perf_counter()
        frames1, cpu1, child1 = session.engine.stats.frames_acquired, cpu_s(), proc_cpu_s(pid)
        session.stop()
        session.wait()
        while pipe.worker.busy or pipe.worker.pending:  # the last set, drained
            time.sleep(0.005)
        self._phase = None
        self.results += [r for r in phase[1:] if r.stamps["result_ready"] <= end]
        self.e2e_s += end - start
        self.frames += frames1 - frames0
        self.parent_cpu += cpu1 - cpu0
        self.e2e_cpu += child1 - child0

    def release(self) -> None:
        self.session.pipeline.ring.release(self.slot)


def add_live_arguments(parser: argparse.ArgumentParser, seconds: float) -> None:
    """The options ``pipeline`` and ``soak`` share."""
    parser.add_argument("--size", type=positive(int), default=None, help="frame size (512)")
    parser.add_argument(
        "--seconds", type=positive(), default=seconds, help=f"how long (default {seconds:g})"
    )
    parser.add_argument("--model", default="dl-sim3", help="learned model (default dl-sim3)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument(
        "--threads", type=positive(int), default=None, help="inference threads (cores - 1)"
    )
    parser.add_argument(
        "--inference",
        choices=["process", "thread"],
        default="process",
        help="the model in a child process (default) or on a thread",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="CPU partition (acquisition on one core, inference on the rest)",
    )
    parser.add_argument(
        "--exposure-ms",
        type=positive(),
        default=None,
        help="exposure (default the profile's shortest: the camera's top speed)",
    )


def live_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments the flags of :func:`add_live_arguments` give."""
    return {
        "device": args.device,
        "size": args.size or 512,
        "model": args.model,
        "seconds": args.seconds,
        "threads": args.threads,
        "inference": args.inference,
        "pin_cpus": args.pin,
        "exposure_ms": args.exposure_ms,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from srlive.recon.fluctuation.options import add_fluctuation_options

    add_live_arguments(parser, seconds=30.0)
    parser.add_argument(
        "--acquisition-nice",
        type=int,
        default=0,
        help="lower the session and simulated-camera threads' priority by N",
    )
    parser.add_argument(
        "--modality",
        choices=["fluctuation", "smlm"],
        default=None,
        help="fluctuation: blinking bursts through eSRRF/SOFI windows (--method, --window, "
        "--step, ...; --size default 256); smlm: live localisation of SMLM bursts "
        "(--set-frames, --exposure-ms default 10, --size default 256); default: the model's "
        "modality",
    )
    parser.add_argument(
        "--set-frames", type=int, default=100, help="--modality smlm: frames per set (100)"
    )
    parser.add_argument("--method", default=None, help="--modality fluctuation: esrrf (default)")
    add_fluctuation_options(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from srlive.recon.fluctuation.options import fluctuation_from_args, given_fluctuation_flags

    if args.modality == "fluctuation":
        from srlive.bench.pipeline_fluctuation import bench_pipeline_fluctuation

        return bench_pipeline_fluctuation(
            fluctuation_from_args(args, args.method or "esrrf"),
            size=args.size or 256,
            seconds=args.seconds,
            threads=args.threads,
            inference=args.inference,
            exposure_ms=args.exposure_ms,
        )
    if args.modality == "smlm":
        from srlive.bench.pipeline_smlm import bench_pipeline_smlm

        if given_fluctuation_flags(args) or args.method:
            raise ValueError("--modality smlm localises: no --method or fluctuation options")
        return bench_pipeline_smlm(
            size=args.size or 256,
            seconds=args.seconds,
            set_frames=args.set_frames,
            exposure_ms=10.0 if args.exposure_ms is None else args.exposure_ms,
            threads=args.threads,
            inference=args.inference,
        )
    given = given_fluctuation_flags(args) + (["--method"] if args.method else [])
    if given:
        raise ValueError(f"{', '.join(given)}: only with --modality fluctuation")
    return bench_pipeline(**live_options(args), acquisition_nice=args.acquisition_nice)
