#!/usr/bin/env python3
"""Run the peer napari-sim-processor 0.1.1 (blind classical 2D-SIM) on raw SIM sets.

Runs inside the peer's own venv (see setup_env.sh); it never imports srlive.

usage: run_peer.py RAW.npy OUT_DIR --pixel-nm 65 --na 1.49 --emission-nm 510 --n 1.518
                   --order angle-major [--repeats 5] [--offset-adu 0]
       run_peer.py --check          (imports the peer, prints its version)

RAW.npy holds (T, A*P, H, W) or (A*P, H, W) raw frames. Per set t the peer calibrates blindly
(finds the carriers) with the defaults of its napari widget, the calibration is timed, the
reconstruction alone (numpy path, ``reconstruct_rfftw`` as the widget's numpy mode calls it) is
timed over --repeats runs after one warm-up, and OUT_DIR gets sr_{t}.npy (float32, 2x grid) and
summary.json (also printed). Exit 0 ok, 2 bad input (one line on stderr), 3 the peer failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

os.environ.setdefault("MPLBACKEND", "Agg")  # the peer imports matplotlib.pyplot at module level

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/peers: peer_run
from peer_run import PeerError, report_errors, run_each, write_summary

del sys.path[0]  # its peer folders must not stand in for the peers' own packages

PEER_DIST = "napari-sim-processor"
PEER_PKG = "napari_sim_processor"

# Defaults of the peer's napari widget (_sim_widget.py, SimAnalysis.setup_ui) for what it sets
# on the processor; the optics (NA, n, wavelength, pixel size / magnification) come from the CLI.
# The processor's own class defaults (alpha 0.3, beta 0.95, w 0.3, eta 0.75, usePhases False)
# are NOT what a widget user gets.
WIDGET_DEFAULTS: dict[str, Any] = {
    "alpha": 0.5,
    "beta": 0.98,
    "w": 0.2,
    "eta": 0.65,
    "usePhases": True,
}


def load_peer() -> tuple[types.ModuleType, types.ModuleType]:
    """Import the peer's processor modules without running its package __init__.

    The package __init__ imports the napari widget (napari, Qt, magicgui); the processors need
    only numpy/scipy/matplotlib. A bare package module pointing at the installed folder lets
    ``napari_sim_processor.processors.*`` import on their own.
    """
    spec = importlib.util.find_spec(PEER_PKG)
    if spec is None or not spec.submodule_search_locations:
        raise PeerError(f"{PEER_DIST} is not installed in {sys.prefix} (run setup_env.sh)")
    if PEER_PKG not in sys.modules:
        pkg = types.ModuleType(PEER_PKG)
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules[PEER_PKG] = pkg
    base = importlib.import_module(f"{PEER_PKG}.processors.baseSimProcessor")
    conv = importlib.import_module(f"{PEER_PKG}.processors.convSimProcessor")
    return base, conv


def peer_version() -> str:
    return importlib.metadata.version(PEER_DIST)


def load_raw(path: Path, frames: int, order: str, angles: int, offset: float) -> np.ndarray:
    """Raw stack as (T, frames, H, W) float32, angle-major, offset subtracted."""
    if not path.is_file():
        raise PeerError(f"{path}: no such file")
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PeerError(f"{path}: not a readable .npy array ({exc})") from None
    if raw.ndim == 3:
        raw = raw[None]
    if raw.ndim != 4 or raw.shape[1] != frames:
        raise PeerError(
            f"{path}: expected (T, {frames}, H, W) or ({frames}, H, W) frames, got {raw.shape}"
        )
    if raw.shape[2] % 2 or raw.shape[3] % 2:
        raise PeerError(f"{path}: H and W must be even for the peer, got {raw.shape[2:]}")
    if not np.issubdtype(raw.dtype, np.number) or not np.all(np.isfinite(raw)):
        raise PeerError(f"{path}: frames must be finite numbers (dtype {raw.dtype})")
    raw = raw.astype(np.float32) - np.float32(offset)
    if order == "phase-major":  # frame p*A + a  ->  a*P + p
        t, _, h, w = raw.shape
        raw = raw.reshape(t, frames // angles, angles, h, w).swapaxes(1, 2).reshape(raw.shape)
    return np.ascontiguousarray(raw)


def make_processor(conv: types.ModuleType, args: argparse.Namespace) -> Any:
    """A ConvSimProcessor set up as the napari widget would, with the given optics."""
    h = conv.ConvSimProcessor(angleSteps=args.angles, phaseSteps=args.phases)
    h.debug = False  # the widget sets this too; debug plots/prints off
    for name, value in processor_attributes(args).items():
        setattr(h, name, value)
    return h


def processor_attributes(args: argparse.Namespace) -> dict[str, Any]:
    """Attributes set on the processor (pixelsize/magnification = sample-plane pixel, µm)."""
    return {
        "pixelsize": args.pixel_nm / 1000.0,
        "magnification": 1.0,
        "NA": args.na,
        "n": args.n,
        "wavelength": args.emission_nm / 1000.0,
        "alpha": args.alpha,
        "beta": args.beta,
        "w": args.w,
        "eta": args.eta,
        "usePhases": args.use_phases,
    }


def carriers(h: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Found carriers per angle in camera-pixel units.

    The peer's kx (column axis) and ky (row axis, increasing row index) are in units of
    NA/wavelength (the OTF cut-off is k = 2), so cycles/pixel = k * NA / wavelength * pixel.
    """
    scale = args.na / (args.emission_nm / 1000.0) * (args.pixel_nm / 1000.0)
    out = []
    for a in range(args.angles):
        k_col = float(np.squeeze(h.kx[a])) * scale
        k_row = float(np.squeeze(h.ky[a])) * scale
        freq = math.hypot(k_row, k_col)
        entry: dict[str, Any] = {
            "angle_index": a,
            "period_px": round(1.0 / freq, 4) if freq > 0 else None,
            "angle_deg": round(math.degrees(math.atan2(k_row, k_col)) % 180.0, 3),
            "k_row_cyc_per_px": round(k_row, 6),
            "k_col_cyc_per_px": round(k_col, 6),
            "amplitude": round(float(np.squeeze(h.ampl[a])), 4),
            "phase_deg": round(math.degrees(float(np.squeeze(h.p[a]))), 2),
            "frame_phases_deg": None,
            "peer_kx": float(np.squeeze(h.kx[a])),
            "peer_ky": float(np.squeeze(h.ky[a])),
        }
        if h.phi is not None:  # usePhases: measured phase of this angle's own frames
            own = h.phi[a, a * args.phases : (a + 1) * args.phases]
            entry["frame_phases_deg"] = [round(math.degrees(float(v)), 2) for v in own]
        out.append(entry)
    return out


def run_set(
    conv: types.ModuleType, imgs: np.ndarray, cal: np.ndarray, args: argparse.Namespace
) -> tuple[np.ndarray, dict[str, Any]]:
    """Calibrate on ``cal``, reconstruct ``imgs``; returns (sr, record)."""
    h = make_processor(conv, args)
    t0 = time.perf_counter()
    h.calibrate(cal, True)
    calibration_s = time.perf_counter() - t0
    sr = np.array(h.reconstruct_rfftw(imgs), dtype=np.float32)  # warm-up, kept as the result
    times_ms = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        h.reconstruct_rfftw(imgs)
        times_ms.append((time.perf_counter() - t0) * 1000.0)
    record = {
        "calibration_s": round(calibration_s, 4),
        "reconstruct_ms_median": round(statistics.median(times_ms), 2) if times_ms else None,
        "reconstruct_ms": [round(v, 2) for v in times_ms],
        "sr_shape": list(sr.shape),
        "carriers": carriers(h, args),
    }
    return sr, record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("raw", nargs="?", type=Path, help="(T, A*P, H, W) .npy raw frames")
    p.add_argument("out_dir", nargs="?", type=Path)
    p.add_argument("--check", action="store_true", help="only import the peer, print version")
    p.add_argument("--pixel-nm", type=float, default=65.0, help="camera pixel at the sample")
    p.add_argument("--na", type=float, default=1.49)
    p.add_argument("--emission-nm", type=float, default=510.0)
    p.add_argument("--n", type=float, default=1.518, help="immersion index (unused by 2D peer)")
    p.add_argument("--order", choices=["angle-major", "phase-major"], default="angle-major")
    p.add_argument("--angles", type=int, default=3)
    p.add_argument("--phases", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5, help="timed reconstructions per set")
    p.add_argument("--offset-adu", type=float, default=0.0, help="subtracted from all frames")
    p.add_argument(
        "--calibrate-on",
        choices=["set", "all"],
        default="set",
        help="calibrate per set (default) or once on all sets summed (widget 'group' over z)",
    )
    p.add_argument("--alpha", type=float, default=WIDGET_DEFAULTS["alpha"])
    p.add_argument("--beta", type=float, default=WIDGET_DEFAULTS["beta"])
    p.add_argument("--w", type=float, default=WIDGET_DEFAULTS["w"], help="Wiener parameter")
    p.add_argument("--eta", type=float, default=WIDGET_DEFAULTS["eta"])
    p.add_argument(
        "--use-phases",
        action=argparse.BooleanOptionalAction,
        default=WIDGET_DEFAULTS["usePhases"],
    )
    args = p.parse_args(argv)
    if not args.check and (args.raw is None or args.out_dir is None):
        p.error("RAW.npy and OUT_DIR are required")
    bad = [n for n in ("pixel_nm", "na", "emission_nm", "n") if not getattr(args, n) > 0]
    if bad or args.angles < 1 or args.phases < 3 or args.repeats < 0:
        p.error("optics must be > 0, --angles >= 1, --phases >= 3, --repeats >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return report_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    base, conv = load_peer()
    if args.check:
        print(f"{PEER_DIST} {peer_version()} (processors import without napari/Qt)")
        return 0
    frames = args.angles * args.phases
    raw = load_raw(args.raw, frames, args.order, args.angles, args.offset_adu)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cal_all = raw.reshape(-1, *raw.shape[2:])  # sets in sequence: the peer sums modulo 9

    def one(t: int) -> tuple[np.ndarray, dict[str, Any]]:
        return run_set(conv, raw[t], cal_all if args.calibrate_on == "all" else raw[t], args)

    sets = run_each(((t, t) for t in range(raw.shape[0])), one, args.out_dir, "set", "t")
    summary = {
        "peer": {
            "name": PEER_DIST,
            "version": peer_version(),
            "processor": "ConvSimProcessor",
            "calibrate": "calibrate(img, findCarrier=True)",
            "reconstruct": "reconstruct_rfftw",
            "optional_backends_found": {
                "pytorch": bool(base.pytorch),
                "cupy": bool(base.cupy),
                "opencv": bool(base.opencv),
                "pyfftw": base.fft.__name__ != "numpy.fft",
            },
        },
        "input": {
            "path": str(args.raw),
            "shape": list(raw.shape),
            "order": args.order,
            "offset_adu": args.offset_adu,
        },
        "settings": {
            "pixel_nm": args.pixel_nm,
            "na": args.na,
            "emission_nm": args.emission_nm,
            "n": args.n,
            "angles": args.angles,
            "phases": args.phases,
            "calibrate_on": args.calibrate_on,
            "repeats": args.repeats,
            "processor_attributes": {
                **processor_attributes(args),
                "a_type": conv.ConvSimProcessor.a_type,
            },
        },
        "host": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": importlib.metadata.version("scipy"),
        },
        "sets": sets,
    }
    return write_summary(summary, args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
