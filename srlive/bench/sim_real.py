"""srlive's blind Wiener SIM against the peer napari-sim-processor on real raw SIM data.

Each 9-frame set of the real TIRF-SIM data in ``../shared`` (or ``--input``) is calibrated
on its own; srlive's reconstruction, the peer's (run in its own venv,
``benchmarks/peers/napari_sim_processor/setup_env.sh``) and the widefield baseline are scored
against the data authors' SIM image with the project's agreement metric; times are medians
of ``--repeats`` runs. Without the peer's venv srlive runs alone. The simulated 512² timing of
``srlive bench recon`` is added under ``synthetic``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from srlive.bench.common import REPO_ROOT, machine_info, positive
from srlive.bench.recon import bench_wiener
from srlive.io.raw_files import group_sets, read_raw_frames
from srlive.io.real_sim import (
    DEFAULT_REAL_INPUT,
    METRIC_PATH,
    Agreement,
    RealOptics,
    default_reference,
    load_agreement,
    load_reference,
)
from srlive.recon.wiener_sim import WienerSIM, fourier_upsample

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "napari_sim_processor" / "run_peer.py"
DEFAULT_PEER_PYTHON = REPO_ROOT / ".peers" / "napari-sim-processor" / "bin" / "python"
PEER_NOT_SET_UP = "not set up: run benchmarks/peers/napari_sim_processor/setup_env.sh"
PEER_TIMEOUT_S = 1800.0
FRAMES_PER_SET = 9


def _median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(float(np.median(times)), 2)


def _score(agreement: Agreement, img: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    a = agreement(np.asarray(img, np.float64), ref)
    return {"full": a["full"], "highpass": a["highpass"], "shift_px": a["shift_px"]}


def srlive_set(
    raw: np.ndarray, optics: RealOptics, repeats: int, agreement: Agreement, ref: np.ndarray
) -> dict[str, Any]:
    """Blind calibration (timed), reconstruction (median ms) and agreement of one raw set."""
    recon = WienerSIM(
        raw.shape[-2:], optics.pixel_nm, optics.na, optics.emission_nm, offset_adu=optics.offset_adu
    )
    start = time.perf_counter()
    params = recon.calibrate(raw)
    calibration_ms = (time.perf_counter() - start) * 1000
    sr = recon.reconstruct(raw)
    carriers = [
        {
            "period_px": round(entry["period_nm"] / optics.pixel_nm, 4),
            "angle_deg": entry["angle_deg"],
            "modulation": entry["modulation"],
            "found": entry["found"],
            "significance": entry["significance"],
        }
        for entry in params.report()
    ]
    return {
        "calibration_ms": round(calibration_ms, 1),
        "reconstruct_ms_median": _median_ms(lambda: recon.reconstruct(raw), repeats),
        "wiener_w": None if recon.wiener_w is None else round(recon.wiener_w, 4),
        "carriers": carriers,
        "agreement": _score(agreement, sr, ref),
    }


def widefield_set(
    raw: np.ndarray, optics: RealOptics, agreement: Agreement, ref: np.ndarray
) -> dict[str, Any]:
    """Agreement of the mean of the frames, Fourier-upsampled 2x (the baseline)."""
    mean = np.asarray(raw, np.float32).mean(axis=0) - np.float32(optics.offset_adu)
    return {"agreement": _score(agreement, fourier_upsample(mean), ref)}


def run_peer(
    peer_python: Path, sets: np.ndarray, optics: RealOptics, repeats: int
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Run napari-sim-processor on all sets in its own venv; its summary and SR images."""
    with tempfile.TemporaryDirectory(prefix="srlive-peer-") as tmp:
        raw_path, out_dir = Path(tmp) / "raw.npy", Path(tmp) / "out"
        np.save(raw_path, np.asarray(sets))
        command = [
            str(peer_python),
            str(PEER_SCRIPT),
            str(raw_path),
            str(out_dir),
            *("--pixel-nm", str(optics.pixel_nm), "--na", str(optics.na)),
            *("--emission-nm", str(optics.emission_nm), "--n", str(optics.n)),
            *("--offset-adu", str(optics.offset_adu), "--order", "angle-major"),
            *("--repeats", str(repeats)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout or "").strip().splitlines()
            last = lines[-1] if lines else "no output"
            raise RuntimeError(f"peer exited {done.returncode}: {last}")
        summary = json.loads((out_dir / "summary.json").read_text())
        images = [np.load(out_dir / s["sr_path"]) for s in summary["sets"]]
    return summary, images


def peer_set(
    record: dict[str, Any], sr: np.ndarray, agreement: Agreement, ref: np.ndarray
) -> dict[str, Any]:
    """The peer's figures for one set, in the same shape as :func:`srlive_set`'s."""
    return {
        "calibration_ms": round(record["calibration_s"] * 1000, 1),
        "reconstruct_ms_median": record["reconstruct_ms_median"],
        "carriers": [
            {k: c[k] for k in ("period_px", "angle_deg", "amplitude")} for c in record["carriers"]
        ],
        "agreement": _score(agreement, sr, ref),
    }


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num and den else None


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """Peer time / srlive time (>1: srlive faster) and srlive − peer agreement."""
    return {
        "speed_ratio_recon": _ratio(peer["reconstruct_ms_median"], ours["reconstruct_ms_median"]),
        "speed_ratio_calibration": _ratio(peer["calibration_ms"], ours["calibration_ms"]),
        "agreement_margin": {
            key: round(ours["agreement"][key] - peer["agreement"][key], 4)
            for key in ("full", "highpass")
        },
    }


def _summary(sets: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for who in ("srlive", "peer", "widefield"):
        if all(who in s for s in sets):
            out[f"{who}_agreement_mean"] = {
                key: round(float(np.mean([s[who]["agreement"][key] for s in sets])), 4)
                for key in ("full", "highpass")
            }
    if sets and all("ratios" in s for s in sets):
        for key in ("speed_ratio_recon", "speed_ratio_calibration"):
            values = [s["ratios"][key] for s in sets if s["ratios"][key] is not None]
            out[f"{key}_median"] = round(float(np.median(values)), 3) if values else None
        out["agreement_margin_min"] = {
            key: min(s["ratios"]["agreement_margin"][key] for s in sets)
            for key in ("full", "highpass")
        }
    return out


def bench_sim_real(
    input_path: Path | None = None,
    reference: Path | None = None,
    optics: RealOptics = RealOptics(),
    peer_python: Path | None = None,
    repeats: int = 20,
    synthetic_size: int | None = 512,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """srlive's blind Wiener SIM vs the peer napari-sim-processor on real raw SIM sets.

    Each set is calibrated on its own; both reconstructions and the widefield baseline are
    scored against ``reference`` with the project's agreement metric. A missing peer venv
    runs srlive alone. ``synthetic_size`` adds :func:`bench_wiener` timing (None: skip).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    say = progress or (lambda _message: None)
    input_path = Path(input_path or DEFAULT_REAL_INPUT)
    if not input_path.is_file():
        raise FileNotFoundError(f"raw SIM file not found: {input_path}")
    reference = Path(reference or default_reference(input_path))
    peer_python = Path(peer_python or DEFAULT_PEER_PYTHON)
    raw = read_raw_frames(input_path)
    sets = group_sets(raw.frames, FRAMES_PER_SET, raw.source)
    h, w = sets.shape[-2:]
    ref = load_reference(reference, (2 * h, 2 * w))
    agreement = load_agreement()

    results: list[dict[str, Any]] = []
    for t in range(sets.shape[0]):
        say(f"srlive: set {t + 1}/{sets.shape[0]}")
        raw_set = np.asarray(sets[t])
        results.append(
            {
                "t": t,
                "srlive": srlive_set(raw_set, optics, repeats, agreement, ref),
                "widefield": widefield_set(raw_set, optics, agreement, ref),
            }
        )

    peer_info: dict[str, Any] | str
    if not peer_python.is_file():
        peer_info = PEER_NOT_SET_UP
    else:
        say(f"peer: {len(results)} set(s) in {peer_python}")
        try:
            summary, images = run_peer(peer_python, sets, optics, repeats)
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            peer_info = {"error": " ".join(str(exc).split())}
        else:
            peer_info = {
                **summary["peer"],
                "settings": summary["settings"],
                "host": summary["host"],
            }
            for entry, record, sr in zip(results, summary["sets"], images, strict=True):
                entry["peer"] = peer_set(record, sr, agreement, ref)
                entry["ratios"] = ratios(entry["srlive"], entry["peer"])

    synthetic = None
    if synthetic_size:
        say(f"synthetic {synthetic_size}x{synthetic_size} timing")
        synthetic = bench_wiener(size=synthetic_size, repeats=repeats)
    return {
        "benchmark": "sim-real",
        "input": {
            "path": str(input_path),
            "reference": str(reference),
            "format": raw.format,
            "sets": int(sets.shape[0]),
            "frame_shape": [int(h), int(w)],
            "order": "angle-major",
        },
        "optics": asdict(optics),
        "repeats": repeats,
        "metric": str(METRIC_PATH),
        "peer": peer_info,
        "sets": results,
        "summary": _summary(results),
        "synthetic": synthetic,
        "machine": machine_info(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", type=Path, default=None, help="raw SIM file (default ../shared ER_1.tif)"
    )
    parser.add_argument(
        "--reference", type=Path, default=None, help="the reference SR image (default beside it)"
    )
    parser.add_argument("--pixel-nm", type=positive(), default=65.0, help="camera pixel, nm")
    parser.add_argument("--na", type=positive(), default=1.49, help="numerical aperture")
    parser.add_argument("--emission-nm", type=positive(), default=510.0, help="emission, nm")
    parser.add_argument("--offset-adu", type=float, default=60.0, help="camera offset, ADU")
    parser.add_argument("--repeats", type=positive(int), default=20, help="timed runs per set")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="the peer venv's python (default .peers/napari-sim-processor/bin/python)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return bench_sim_real(
        input_path=args.input,
        reference=args.reference,
        optics=RealOptics(args.pixel_nm, args.na, args.emission_nm, args.offset_adu),
        peer_python=args.peer_python,
        repeats=args.repeats,
        progress=lambda message: print(f"srlive: bench: {message}", file=sys.stderr),
    )
