#!/usr/bin/env python3
"""Run the peer Picasso (picassosr 0.11.3) localisation on a movie, timed.

Runs inside the peer's own venv (see setup_env.sh); it never imports srlive.

usage: run_peer.py MOVIE.npy OUT_DIR --baseline 100 --sensitivity 0.46 --read-noise-e 1.6
                   --pixel-nm 65 [--box 7] [--min-ng 2000 [4000 ...]] [--fit gaussmle]
                   [--repeats 1] [--no-scmos-map]
       run_peer.py --check          (imports the peer, prints its version)

MOVIE.npy holds (T, H, W) uint16 frames in ADU. For each --min-ng (Picasso's minimum net
gradient, its detection threshold) the script runs what Picasso: Localize does:
``picasso.localize.identify(movie, min_ng, box)`` then ``picasso.localize.fit(movie,
camera_info=..., identifications=..., box=..., fitting_method=FIT)``, on the movie opened as
a read-only ``np.memmap`` (what ``fit`` accepts besides Picasso's own movie classes).
The camera: ``Baseline`` (ADU), ``Sensitivity`` (e-/ADU), ``Gain`` 1 (no EM gain),
``Pixelsize`` (nm); unless --no-scmos-map, a uniform sCMOS calibration (offset map = the
baseline, variance map = (read noise / sensitivity)² ADU²) so its MLE uses the same
read-noise model (Huang et al. 2013) as srlive. One untimed warm-up on the first frames
compiles Picasso's numba code; then --repeats timed runs (median wall time and CPU time of
the process, all threads, reported; the last run's localisations kept). OUT_DIR gets
locs_{i}.npz (per --min-ng: frame, x, y in camera pixels with pixel k's centre at k,
photons, bg, lpx, lpy, sx, sy, net_gradient) and summary.json (also printed). Exit 0 ok,
2 bad input (one line on stderr), 3 the peer failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
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

PEER_DIST = "picassosr"
WARMUP_FRAMES = 8
FIT_METHODS = ("gaussmle", "gaussmle-spherical", "gausslq")


class PeerError(Exception):
    """Bad input or a peer that cannot be loaded: reported as one line, exit 2."""


def load_peer() -> types.SimpleNamespace:
    """Import Picasso's localisation; its import-time chatter (audio, CUDA) is captured."""
    notes = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(notes),
            contextlib.redirect_stderr(notes),
        ):
            warnings.simplefilter("ignore")
            import picasso.localize as localize
    except Exception as exc:
        raise PeerError(f"cannot import picasso.localize: {type(exc).__name__}: {exc}") from None
    return types.SimpleNamespace(
        localize=localize,
        version=importlib.metadata.version(PEER_DIST),
        notes=" ".join(notes.getvalue().split()),
    )


def _camera(args: argparse.Namespace, shape: tuple[int, int]) -> tuple[dict, dict | None]:
    info = {
        "Baseline": float(args.baseline),
        "Sensitivity": float(args.sensitivity),
        "Gain": 1,
        "Pixelsize": float(args.pixel_nm),
    }
    if args.no_scmos_map:
        return info, None
    variance_adu2 = (args.read_noise_e / args.sensitivity) ** 2
    return info, {
        "offset": np.full(shape, args.baseline, np.float32),
        "variance": np.full(shape, variance_adu2, np.float32),
    }


def _quiet(call, *a, **k):
    """Run a peer call with its progress output and warnings captured."""
    sink = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        warnings.simplefilter("ignore")
        return call(*a, **k)


def localize_once(peer, movie, args, min_ng: float, camera: tuple[dict, dict | None]):
    """identify + fit on ``movie``; (locs DataFrame, identify s, fit s, CPU s of all threads)."""
    info, calibration = camera
    t0, c0 = time.perf_counter(), time.process_time()
    ids = _quiet(peer.localize.identify, movie, min_ng, args.box, return_info=False)
    t1 = time.perf_counter()
    locs, _ = _quiet(
        peer.localize.fit,
        movie,
        camera_info=dict(info),
        identifications=ids,
        box=args.box,
        fitting_method=args.fit,
        camera_calibration=calibration,
    )
    t2 = time.perf_counter()
    return locs, t1 - t0, t2 - t1, time.process_time() - c0


def _columns(locs) -> dict[str, np.ndarray]:
    names = ("frame", "x", "y", "photons", "bg", "lpx", "lpy", "sx", "sy", "net_gradient")
    if locs is None or len(locs) == 0:
        return {n: np.zeros(0, np.float32) for n in names}
    return {n: np.asarray(locs[n]) for n in names if n in locs.columns}


def run(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.movie)
    if not path.is_file() or path.suffix != ".npy":
        raise PeerError(f"{path}: not a .npy movie")
    movie = np.load(path, mmap_mode="r")
    if movie.ndim != 3 or movie.dtype != np.uint16:
        raise PeerError(f"{path}: need (T, H, W) uint16 frames, got {movie.shape} {movie.dtype}")
    if args.box % 2 == 0 or args.box < 3:
        raise PeerError(f"--box must be odd and >= 3, got {args.box}")
    peer = load_peer()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    camera = _camera(args, movie.shape[1:])
    warm = np.load(path, mmap_mode="r")[:WARMUP_FRAMES]  # a memmap slice stays a memmap
    t = time.perf_counter()
    localize_once(peer, warm, args, float(min(args.min_ng)), camera)
    warmup_s = time.perf_counter() - t
    runs = []
    for i, min_ng in enumerate(args.min_ng):
        times, cpu = [], []
        for _ in range(max(args.repeats, 1)):
            locs, t_id, t_fit, t_cpu = localize_once(peer, movie, args, float(min_ng), camera)
            times.append((t_id, t_fit))
            cpu.append(t_cpu)
        np.savez(out / f"locs_{i}.npz", **_columns(locs))
        total = [a + b for a, b in times]
        runs.append(
            {
                "i": i,
                "min_net_gradient": float(min_ng),
                "locs_path": f"locs_{i}.npz",
                "localizations": 0 if locs is None else len(locs),
                "seconds": statistics.median(total),
                "seconds_repeats": total,
                "cpu_seconds": statistics.median(cpu),
                "identify_s": statistics.median(a for a, _ in times),
                "fit_s": statistics.median(b for _, b in times),
            }
        )
    return {
        "peer": {
            "name": PEER_DIST,
            "version": peer.version,
            "steps": ["picasso.localize.identify", "picasso.localize.fit"],
            "fitting_method": args.fit,
            "import_notes": peer.notes,
        },
        "input": {"path": str(path), "shape": list(movie.shape)},
        "settings": {
            "box": args.box,
            "baseline": args.baseline,
            "sensitivity": args.sensitivity,
            "read_noise_e": args.read_noise_e,
            "pixel_nm": args.pixel_nm,
            "scmos_map": not args.no_scmos_map,
            "repeats": args.repeats,
            "warmup_frames": WARMUP_FRAMES,
        },
        "host": {
            "cpu_count": os.cpu_count(),
            "numba_num_threads": _numba_threads(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "warmup_s": warmup_s,
        "runs": runs,
    }


def _numba_threads() -> int | None:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movie", nargs="?")
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--check", action="store_true", help="import the peer and exit")
    parser.add_argument("--baseline", type=float, default=100.0, help="camera offset (ADU)")
    parser.add_argument("--sensitivity", type=float, default=0.46, help="e- per ADU")
    parser.add_argument("--read-noise-e", type=float, default=1.6, help="read noise (e- rms)")
    parser.add_argument("--pixel-nm", type=float, default=65.0)
    parser.add_argument("--box", type=int, default=7)
    parser.add_argument("--min-ng", type=float, nargs="+", default=[2000.0])
    parser.add_argument("--fit", choices=FIT_METHODS, default="gaussmle")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-scmos-map", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.check:
            peer = load_peer()
            print(json.dumps({"peer": PEER_DIST, "version": peer.version, "notes": peer.notes}))
            return 0
        if args.movie is None or args.out_dir is None:
            raise PeerError("need MOVIE.npy and OUT_DIR (or --check)")
        summary = run(args)
    except PeerError as exc:
        print(f"run_peer: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"run_peer: the peer failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    text = json.dumps(summary, indent=2)
    (Path(args.out_dir) / "summary.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
