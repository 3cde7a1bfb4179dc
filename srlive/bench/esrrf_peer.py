"""srlive's eSRRF against the peer NanoPyx 2.1.5's on the same simulated bursts.

The peer runs in its own venv (``benchmarks/peers/nanopyx/setup_env.sh``) through
``run_peer.py`` in a subprocess; the bursts go there as a temporary .npy (camera offset
already subtracted, so both methods see the same numbers). Both reconstructions are scored
here, in one process: NanoPyx leaves a zero border of ``int(radius·m)`` fine pixels (cropped)
and its grid sits a few fine pixels from srlive's (found by the best correlation over integer
shifts, reported). Time per window is the median of ``repeats`` timed runs after one warm-up
(the first run itself when ``repeats`` is 0), measured the same way for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulators.fluctuation import simulate_burst, structure_emitters
from srlive.bench.common import REPO_ROOT, machine_info, positive
from srlive.bench.esrrf_params import EsrrfParams
from srlive.recon.fluctuation.esrrf import esrrf

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "nanopyx" / "run_peer.py"
DEFAULT_PEER_PYTHON = REPO_ROOT / ".peers" / "nanopyx" / "bin" / "python"
PEER_NOT_SET_UP = "not set up: run benchmarks/peers/nanopyx/setup_env.sh"
PEER_TIMEOUT_S = 4 * 3600.0
_SEARCH_CROP = 1024  # fine pixels per side of the central crop the shift search uses


@dataclass(frozen=True)
class EsrrfPeerOptions:
    """Options of :func:`bench_esrrf_peer`."""

    size: int = 512
    """camera pixels per side of each frame"""
    frames: int = 100
    """frames per window (one eSRRF image each)"""
    windows: int = 1
    """windows (independent bursts of the same structure, continued in time)"""
    structure: str = "microtubules"
    """simulated structure (simulators.samples.SAMPLE_KINDS)"""
    power_mw: float = 20.0
    """excitation power, mW"""
    params: EsrrfParams = field(default_factory=EsrrfParams)
    """eSRRF parameters, the same for both (macro-pixel correction and intensity weighting on)"""
    repeats: int = 1
    """timed runs per window after one warm-up (0: time the first run)"""
    max_shift: int = 10
    """largest grid offset searched, fine pixels per axis"""
    peer_python: str | None = None
    """the peer venv's python (default .peers/nanopyx/bin/python)"""
    chunk_frames: int = 10
    """frames per NanoPyx eSRRF-step call (bounds its memory; same result)"""
    seed: int = 0
    """seed of emitters and noise"""


def make_windows(opts: EsrrfPeerOptions) -> np.ndarray:
    """(N, T, H, W) float32 windows of one blinking structure, camera offset subtracted."""
    emitters = structure_emitters(opts.structure, (opts.size, opts.size), seed=opts.seed)
    rng = np.random.default_rng(opts.seed + 1)
    out = np.empty((opts.windows, opts.frames, opts.size, opts.size), np.float32)
    state = None
    for i in range(opts.windows):
        burst = simulate_burst(emitters, opts.frames, opts.power_mw, rng=rng, initial_state=state)
        state = burst.final_state
        out[i] = burst.frames.astype(np.float32) - np.float32(burst.camera.offset_adu)
    return out


def time_srlive(window: np.ndarray, p: EsrrfParams, repeats: int) -> tuple[np.ndarray, dict]:
    """srlive's eSRRF of one window: the image and its timing (same protocol as the peer's)."""

    def run() -> np.ndarray:
        return esrrf(window, p.magnification, p.radius, p.sensitivity, temporal=p.temporal)

    t0, c0 = time.perf_counter(), time.process_time()
    image = run()
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return image, {
        "seconds": round(statistics.median(times) if times else first, 3),
        "cpu_seconds": round(statistics.median(cpu) if cpu else first_cpu, 3),
        "seconds_repeats": [round(v, 3) for v in times],
        "first_run_seconds": round(first, 3),
    }


def run_peer(
    peer_python: Path, windows: np.ndarray, opts: EsrrfPeerOptions
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """NanoPyx's eSRRF of every window in its own venv: its summary and images."""
    p = opts.params
    with tempfile.TemporaryDirectory(prefix="srlive-nanopyx-") as tmp:
        path, out_dir = Path(tmp) / "bursts.npy", Path(tmp) / "out"
        np.save(path, windows)
        command = [
            str(peer_python),
            str(PEER_SCRIPT),
            str(path),
            str(out_dir),
            *("--magnification", str(p.magnification), "--radius", str(p.radius)),
            *("--sensitivity", str(p.sensitivity), "--temporal", p.temporal),
            "--macro-pixel-correction",
            "--intensity-weighting",
            *("--repeats", str(opts.repeats), "--chunk-frames", str(opts.chunk_frames)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout or "").strip().splitlines()
            raise RuntimeError(f"peer exited {done.returncode}: {lines[-1] if lines else ''}")
        summary = json.loads((out_dir / "summary.json").read_text())
        images = [np.load(out_dir / w["sr_path"]) for w in summary["windows"]]
    return summary, images


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def _pair(ours: np.ndarray, peer: np.ndarray, margin: int, dy: int, dx: int) -> tuple:
    h, w = ours.shape
    a = ours[margin : h - margin, margin : w - margin]
    b = peer[margin + dy : h - margin + dy, margin + dx : w - margin + dx]
    return a, b


def align(ours: np.ndarray, peer: np.ndarray, border: int, max_shift: int) -> dict[str, Any]:
    """Correlation of the two images at the integer shift (peer = ours moved by (dy, dx))
    that maximises it, the peer's zero border and the search range cropped."""
    if ours.shape != peer.shape:
        raise ValueError(f"images differ in shape: {ours.shape} vs {peer.shape}")
    margin = border + max_shift
    if min(ours.shape) <= 2 * margin + 8:
        raise ValueError(f"images {ours.shape} too small for a {margin}-pixel crop")
    h, w = ours.shape
    cy, cx = max(0, (h - _SEARCH_CROP) // 2), max(0, (w - _SEARCH_CROP) // 2)
    crop = (slice(cy, h - cy), slice(cx, w - cx))  # the search uses a central crop only
    best, shift = -2.0, (0, 0)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            r = _pearson(*_pair(ours[crop], peer[crop], margin, dy, dx))
            if r > best:
                best, shift = r, (dy, dx)
    return {
        "correlation": round(_pearson(*_pair(ours, peer, margin, *shift)), 4),
        "correlation_unaligned": round(_pearson(*_pair(ours, peer, margin, 0, 0)), 4),
        "shift_fine_px": list(shift),
        "cropped_px_per_side": margin,
    }


def bench_esrrf_peer(opts: EsrrfPeerOptions | None = None) -> dict[str, Any]:
    """srlive's and NanoPyx's eSRRF on the same bursts: agreement, time per window, speed
    ratio (> 1: srlive faster). Without the peer venv, srlive alone."""
    opts = opts or EsrrfPeerOptions()
    if opts.size < 16 or opts.frames < 2 or opts.windows < 1 or opts.repeats < 0:
        raise ValueError("need size >= 16, frames >= 2, windows >= 1 and repeats >= 0")
    load_start = os.getloadavg()
    windows = make_windows(opts)
    p = opts.params
    ours = [time_srlive(w, p, opts.repeats) for w in windows]
    records: list[dict[str, Any]] = [{"i": i, "srlive": t} for i, (_, t) in enumerate(ours)]
    peer_python = Path(opts.peer_python) if opts.peer_python else DEFAULT_PEER_PYTHON
    peer_info: dict[str, Any] | str
    if not peer_python.is_file():
        peer_info = PEER_NOT_SET_UP
    else:
        try:
            summary, images = run_peer(peer_python, windows, opts)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            peer_info = {"error": " ".join(str(exc).split())}
        else:
            peer_info = {k: summary["peer"][k] for k in ("name", "version", "step")}
            peer_info["settings"] = summary["settings"]
            peer_info["host"] = summary["host"]
            for rec, (img, _), w, sr in zip(records, ours, summary["windows"], images, strict=True):
                t_peer = w["seconds"] if w["seconds"] is not None else w["warmup_seconds"]
                cpu_peer = w.get("cpu_seconds") or w.get("warmup_cpu_seconds")
                rec["peer"] = {
                    "seconds": t_peer,
                    "cpu_seconds": cpu_peer,
                    "seconds_repeats": w["seconds_repeats"],
                    "first_run_seconds": w["warmup_seconds"],
                    "run_type": w["run_type"],
                }
                rec["agreement"] = align(img, sr, w["zero_border_px"], opts.max_shift)
                rec["speed_ratio"] = round(t_peer / rec["srlive"]["seconds"], 3)
                if cpu_peer:
                    rec["cpu_ratio"] = round(cpu_peer / rec["srlive"]["cpu_seconds"], 3)
    summary_out: dict[str, Any] = {
        "srlive_seconds_per_window_median": statistics.median(
            r["srlive"]["seconds"] for r in records
        )
    }
    if all("peer" in r for r in records):
        summary_out["peer_seconds_per_window_median"] = statistics.median(
            r["peer"]["seconds"] for r in records
        )
        summary_out["speed_ratio_median"] = statistics.median(r["speed_ratio"] for r in records)
        summary_out["correlation_min"] = min(r["agreement"]["correlation"] for r in records)
    return {
        "benchmark": "esrrf-peer",
        "options": asdict(opts),
        "timing": (
            "median of repeats timed runs after one warm-up"
            if opts.repeats
            else "the first run of each window (no warm-up)"
        ),
        "speed_ratio_means": "peer seconds / srlive seconds = srlive speed / NanoPyx speed",
        "cpu_ratio_means": "the same with CPU seconds (all threads): less sensitive to load",
        "load_average_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "peer": peer_info,
        "windows": records,
        "summary": summary_out,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": machine_info(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive(int), default=512, help="frame size, px")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="the peer venv's python (default .peers/nanopyx/bin/python)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_esrrf_peer(
        EsrrfPeerOptions(
            size=args.size,
            repeats=1 if args.size <= 256 else 0,  # NanoPyx: ~20 min per 512² window here
            peer_python=str(args.peer_python) if args.peer_python else None,
        )
    )
