#!/usr/bin/env python3
"""Run the peer NanoPyx 2.1.5 eSRRF on fluctuation bursts, timed, one window at a time.

Runs inside the peer's own venv (see setup_env.sh); it never imports srlive.

usage: run_peer.py BURST.npy OUT_DIR [--magnification 5] [--radius 1.5] [--sensitivity 1]
                   [--temporal AVG|VAR|TAC2] [--[no-]macro-pixel-correction]
                   [--[no-]intensity-weighting] [--run-type threaded] [--chunk-frames 10]
                   [--repeats 3]
       run_peer.py --check          (imports the peer, prints its version and run types)

BURST.npy holds (T, H, W) or (N, T, H, W) frames (N windows of T frames). Each window is one
eSRRF time point: NanoPyx's eSRRF step (``nanopyx.core.transform.eSRRF_ST``, run through its
``Workflow`` so the run type that really ran is known) on chunks of --chunk-frames frames,
then ``calculate_eSRRF_temporal_correlations`` over all frames and ``macro_pixel_corrector``:
what ``nanopyx.methods.eSRRF`` does, without holding every frame's 2m-sampled gradients at once
(the eSRRF step is frame by frame, so the result is the same; --compare-public checks it).
One warm-up (kept as the result) and --repeats timed runs per window; OUT_DIR gets sr_{i}.npy
(float32, (H*m, W*m)) and summary.json (also printed). Exit 0 ok, 2 bad input (one line on
stderr), 3 the peer failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import os
import platform
import statistics
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/peers: peer_run
from peer_run import PeerError, report_errors, run_each, write_summary

del sys.path[0]  # its peer folders must not stand in for the peers' own packages

PEER_DIST = "nanopyx"
# The Liquid Engine appends every run's time to YAML files under ~/.liquid_engine (read back by
# its Agent to choose run types). Keep them inside the peer's env, not the user's home.
ENGINE_HOME = Path(sys.prefix) / "liquid-engine-home"
TEMPORAL = ("AVG", "VAR", "TAC2")  # what calculate_eSRRF_temporal_correlations accepts


def load_peer() -> types.SimpleNamespace:
    """Import the NanoPyx pieces; its import-time notes (OpenCL, Numba, Dask) are captured."""
    os.environ["HOME"] = str(ENGINE_HOME)
    ENGINE_HOME.mkdir(exist_ok=True)
    notes = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(notes):
            warnings.simplefilter("ignore")
            from nanopyx.core.transform import eSRRF_ST
            from nanopyx.core.transform.mpcorrector import macro_pixel_corrector
            from nanopyx.core.transform.sr_temporal_correlations import (
                calculate_eSRRF_temporal_correlations,
            )
            from nanopyx.methods import eSRRF
            from nanopyx.methods.workflow import Workflow
    except ImportError as exc:
        raise PeerError(
            f"{PEER_DIST} does not import in {sys.prefix} ({exc}); run setup_env.sh"
        ) from None
    # Without an OpenCL device every new engine object warns that OpenCL is disabled.
    warnings.filterwarnings("ignore", message="OpenCL is disabled", category=UserWarning)
    return types.SimpleNamespace(
        eSRRF_ST=eSRRF_ST,
        Workflow=Workflow,
        temporal=calculate_eSRRF_temporal_correlations,
        mpc=macro_pixel_corrector,
        public_eSRRF=eSRRF,
        run_types=list(eSRRF_ST(verbose=False)._run_types),
        import_notes=[line for line in notes.getvalue().splitlines() if line.strip()],
    )


def opencl_devices() -> list[str]:
    """OpenCL devices pyopencl sees (none without an ICD such as a GPU driver)."""
    try:
        import pyopencl as cl

        return [f"{d.name} ({p.name})" for p in cl.get_platforms() for d in p.get_devices()]
    except Exception:
        return []


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in (PEER_DIST, "liquid_engine", "numpy", "scipy", "Cython", "pyopencl"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def load_bursts(path: Path) -> np.ndarray:
    """Windows as (N, T, H, W) float32 from a (T, H, W) or (N, T, H, W) .npy."""
    if not path.is_file():
        raise PeerError(f"{path}: no such file")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PeerError(f"{path}: not a readable .npy array ({exc})") from None
    if raw.ndim == 3:
        raw = raw[None]
    if raw.ndim != 4 or 0 in raw.shape:
        raise PeerError(f"{path}: expected (T, H, W) or (N, T, H, W) frames, got {raw.shape}")
    if not np.issubdtype(raw.dtype, np.number) or np.iscomplexobj(raw):
        raise PeerError(f"{path}: frames must be real numbers, got dtype {raw.dtype}")
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    if not np.all(np.isfinite(raw)):
        raise PeerError(f"{path}: frames contain NaN or inf")
    return raw


def check_window(shape: tuple[int, ...], args: argparse.Namespace, path: Path) -> None:
    """Reject windows the peer cannot process sensibly (too few frames, all border)."""
    t, h, w = shape
    if args.temporal == "TAC2" and t < 2:
        raise PeerError(f"{path}: TAC2 needs at least 2 frames per window, got {t}")
    margin = border_px(args)
    if min(h, w) * args.magnification <= 2 * margin:
        raise PeerError(
            f"{path}: frames {h}x{w} leave nothing inside the {margin}-pixel zero border"
            f" of magnification {args.magnification}, radius {args.radius}"
        )


def border_px(args: argparse.Namespace) -> int:
    """SR pixels on each side that the peer's CPU paths leave at 0 (int(radius * m))."""
    return int(args.radius * args.magnification)


def border_is_zero(sr: np.ndarray, m: int) -> bool | None:
    """Whether the m-pixel frame around ``sr`` is all 0 (None when m is 0)."""
    if m == 0:
        return None
    inner = np.zeros(sr.shape, bool)
    inner[m:-m, m:-m] = True
    return not np.any(sr[~inner])


def esrrf_window(
    peer: types.SimpleNamespace, window: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, list[str], list[str]]:
    """One eSRRF time point: (sr (H*m, W*m) float32, run types that ran, peer messages)."""
    force = None if args.run_type == "auto" else args.run_type
    kwargs = {
        "magnification": args.magnification,
        "radius": args.radius,
        "sensitivity": args.sensitivity,
        "use_fht": False,
        "doIntensityWeighting": args.intensity_weighting,
        "pad_edges": False,
    }
    ran: list[str] = []
    chatter = io.StringIO()
    n = window.shape[0]
    stack = np.empty((n, *(s * args.magnification for s in window.shape[1:])), np.float32)
    with contextlib.redirect_stdout(chatter):
        for start in range(0, n, args.chunk_frames):
            chunk = window[start : start + args.chunk_frames]
            step = peer.eSRRF_ST(verbose=False)
            flow = peer.Workflow((step, (chunk,), dict(kwargs)))
            (rgc,), run_type, _ = flow.run(_force_run_type=force)
            stack[start : start + len(chunk)] = rgc  # per-frame radial gradient convergence
            ran.append(run_type)
        sr = np.asarray(peer.temporal(stack, args.temporal), dtype=np.float32)
        del stack
        if args.macro_pixel_correction:
            sr = peer.mpc(sr[None], magnification=args.magnification)[0]
    messages = [
        line
        for line in chatter.getvalue().splitlines()
        if "error" in line.lower() or "Trying" in line
    ]
    return np.ascontiguousarray(sr, dtype=np.float32), sorted(set(ran)), messages


def compare_public(
    peer: types.SimpleNamespace, window: np.ndarray, sr: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Max |difference| to ``nanopyx.methods.eSRRF`` on the same window (all frames at once)."""
    with contextlib.redirect_stdout(io.StringIO()):
        ref = peer.public_eSRRF(
            window,
            magnification=args.magnification,
            radius=args.radius,
            sensitivity=args.sensitivity,
            frames_per_timepoint=0,
            temporal_correlation=args.temporal,
            doIntensityWeighting=args.intensity_weighting,
            macro_pixel_correction=args.macro_pixel_correction,
            _force_run_type=None if args.run_type == "auto" else args.run_type,
        )
    ref = np.asarray(ref, dtype=np.float32)
    return {
        "shape": list(ref.shape),
        "max_abs_diff": float(np.max(np.abs(ref - sr))) if ref.shape == sr.shape else None,
        "max_abs": float(np.max(np.abs(ref))),
    }


def run_window(
    peer: types.SimpleNamespace, window: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, dict[str, Any]]:
    """Warm-up (kept as the result), then --repeats timed runs; returns (sr, record)."""
    t0, c0 = time.perf_counter(), time.process_time()
    sr, ran, messages = esrrf_window(peer, window, args)
    warmup_s, warmup_cpu = time.perf_counter() - t0, time.process_time() - c0
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        again, ran_again, more = esrrf_window(peer, window, args)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        ran = sorted(set(ran) | set(ran_again))
        messages += more
        del again
    m = border_px(args)
    inner = sr[m : sr.shape[0] - m, m : sr.shape[1] - m]  # what the lead should compare
    record: dict[str, Any] = {
        "frames": int(window.shape[0]),
        "seconds": round(statistics.median(times), 3) if times else None,
        "seconds_repeats": [round(v, 3) for v in times],
        "warmup_seconds": round(warmup_s, 3),
        # CPU seconds of all the process's threads: less sensitive to other load than wall time
        "cpu_seconds": round(statistics.median(cpu), 3) if cpu else None,
        "warmup_cpu_seconds": round(warmup_cpu, 3),
        "run_type": ran[0] if len(ran) == 1 else ran,
        "sr_shape": list(sr.shape),
        "zero_border_px": m,
        "border_all_zero": border_is_zero(sr, m),
        "inner_min_max": [float(inner.min()), float(inner.max())],
        "peer_messages": messages,
    }
    if args.compare_public:
        record["compare_public"] = compare_public(peer, window, sr, args)
    return sr, record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("burst", nargs="?", type=Path, help="(T, H, W) or (N, T, H, W) .npy frames")
    p.add_argument("out_dir", nargs="?", type=Path)
    p.add_argument("--check", action="store_true", help="only import the peer, print versions")
    p.add_argument("--magnification", type=int, default=5)
    p.add_argument("--radius", type=float, default=1.5, help="ring radius, camera pixels")
    p.add_argument("--sensitivity", type=float, default=1.0)
    p.add_argument("--temporal", choices=TEMPORAL, default="AVG", help="temporal analysis")
    p.add_argument("--macro-pixel-correction", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--intensity-weighting",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NanoPyx doIntensityWeighting (RGC times the magnified frame)",
    )
    p.add_argument(
        "--run-type",
        default="threaded",
        help="Liquid Engine run type of the eSRRF step ('auto': its Agent chooses); "
        "--check lists those available",
    )
    p.add_argument("--chunk-frames", type=int, default=10, help="frames per eSRRF-step call")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per window after a warm-up")
    p.add_argument(
        "--compare-public",
        action="store_true",
        help="also run nanopyx.methods.eSRRF on each window (all frames at once: memory "
        "about T*H*W*m^2*44 bytes) and report the largest difference",
    )
    args = p.parse_args(argv)
    if not args.check and (args.burst is None or args.out_dir is None):
        p.error("BURST.npy and OUT_DIR are required")
    if args.magnification < 1 or not args.radius > 0 or not args.sensitivity > 0:
        p.error("--magnification must be >= 1, --radius and --sensitivity > 0")
    if args.chunk_frames < 1 or args.repeats < 0:
        p.error("--chunk-frames must be >= 1 and --repeats >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    peer = load_peer()
    if args.run_type != "auto" and args.run_type not in peer.run_types:
        raise PeerError(
            f"run type {args.run_type!r} not available here"
            f" (available: auto, {', '.join(peer.run_types)})"
        )
    if args.check:
        v = versions()
        print(f"{PEER_DIST} {v[PEER_DIST]} (liquid_engine {v['liquid_engine']})")
        print(f"eSRRF_ST run types: {', '.join(peer.run_types)}")
        print(f"OpenCL devices: {', '.join(opencl_devices()) or 'none'}")
        return 0
    bursts = load_bursts(args.burst)
    check_window(bursts.shape[1:], args, args.burst)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    windows = run_each(
        enumerate(bursts), lambda w: run_window(peer, w, args), args.out_dir, "window", "i"
    )
    summary = {
        "peer": {
            "name": PEER_DIST,
            "version": versions()[PEER_DIST],
            "step": "nanopyx.core.transform.eSRRF_ST (nanopyx.core.transform._le_esrrf.eSRRF)",
            "run_through": "nanopyx.methods.workflow.Workflow.run(_force_run_type=...)",
            "temporal": "nanopyx.core.transform.sr_temporal_correlations."
            "calculate_eSRRF_temporal_correlations",
            "macro_pixel_correction": "nanopyx.core.transform.mpcorrector.macro_pixel_corrector",
            "equivalent_to": "nanopyx.methods.eSRRF",
            "run_types_available": peer.run_types,
            "opencl_devices": opencl_devices(),
            "import_notes": peer.import_notes,
            "engine_log_dir": str(ENGINE_HOME / ".liquid_engine"),
        },
        "input": {"path": str(args.burst), "shape": list(bursts.shape)},
        "settings": {
            "magnification": args.magnification,
            "radius": args.radius,
            "sensitivity": args.sensitivity,
            "temporal_correlation": args.temporal,
            "macro_pixel_correction": args.macro_pixel_correction,
            "doIntensityWeighting": args.intensity_weighting,
            "use_fht": False,
            "pad_edges": False,
            "frames_per_timepoint": int(bursts.shape[1]),
            "run_type_requested": args.run_type,
            "chunk_frames": args.chunk_frames,
            "repeats": args.repeats,
        },
        "host": {
            "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(),
            **{k: v for k, v in versions().items() if k != PEER_DIST},
        },
        "windows": windows,
    }
    return write_summary(summary, args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
