"""Benchmarks of classical SIM: reconstruction time on simulated data (:func:`bench_wiener`)
and srlive against a peer on real raw SIM data (:func:`bench_sim_real`)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from simulators.imaging import default_sim_patterns, simulate_sim_stack
from simulators.samples import make_sample
from srlive.io.raw_files import group_sets, read_raw_frames
from srlive.recon.resolution import frc_resolution_nm
from srlive.recon.wiener_sim import WienerSIM, fourier_upsample


def bench_wiener(size: int = 512, repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """Calibrate once, then time ``repeats`` reconstructions of a ``size``² set.

    Also reports the FRC resolution of widefield and Wiener SIM on the same simulated
    microtubules (two independent noise realisations each).
    """
    sample = make_sample("microtubules", (2 * size, 2 * size), 32.5, seed=seed, motion=False)
    patterns = default_sim_patterns(fov_nm=(size * 65.0, size * 65.0))
    raw, raw2 = (
        simulate_sim_stack(sample.density(), patterns, rng=np.random.default_rng(s))
        for s in (seed, seed + 1)
    )
    recon = WienerSIM((size, size), 65.0, 1.49, 510.0)
    start = time.perf_counter()
    recon.calibrate(raw)
    calibration_ms = (time.perf_counter() - start) * 1000
    for _ in range(3):
        recon.reconstruct(raw)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        recon.reconstruct(raw)
        times.append((time.perf_counter() - start) * 1000)
    sim_nm = frc_resolution_nm(recon.reconstruct(raw), recon.reconstruct(raw2), 32.5)
    wf_nm = frc_resolution_nm(recon.widefield_upsampled(raw), recon.widefield_upsampled(raw2), 32.5)
    return {
        "benchmark": "recon",
        "method": "wiener-sim",
        "frames_per_set": 9,
        "frame_shape": [size, size],
        "output_shape": [2 * size, 2 * size],
        "repeats": repeats,
        "ms_mean": round(float(np.mean(times)), 2),
        "ms_median": round(float(np.median(times)), 2),
        "ms_p90": round(float(np.percentile(times, 90)), 2),
        "calibration_ms": round(calibration_ms, 1),
        "frc_resolution_nm": {
            "widefield": round(wf_nm, 1),
            "wiener_sim": round(sim_nm, 1),
            "improvement": round(wf_nm / sim_nm, 3),
        },
        "cpu_count": os.cpu_count(),
    }


# --- real SIM data against a peer -------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_REAL_INPUT = SHARED / "data" / "real-sim" / "tsim-er" / "ER_1.tif"
METRIC_PATH = SHARED / "tools" / "compare_to_reference.py"
PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "napari_sim_processor" / "run_peer.py"
DEFAULT_PEER_PYTHON = REPO_ROOT / ".peers" / "napari-sim-processor" / "bin" / "python"
PEER_NOT_SET_UP = "not set up: run benchmarks/peers/napari_sim_processor/setup_env.sh"
PEER_TIMEOUT_S = 1800.0
FRAMES_PER_SET = 9

Agreement = Callable[[np.ndarray, np.ndarray], dict[str, Any]]


@dataclass(frozen=True)
class RealOptics:
    """The optics the real data is reconstructed with (the same for srlive and the peer)."""

    pixel_nm: float = 65.0
    na: float = 1.49
    emission_nm: float = 510.0
    offset_adu: float = 60.0
    n: float = 1.518  # immersion index; only the peer takes it (its 2D processor ignores it)


def default_reference(raw_path: Path) -> Path:
    """``X_reference_sim.tif`` beside ``X.tif``."""
    return raw_path.with_name(f"{raw_path.stem}_reference_sim.tif")


def load_agreement(path: Path = METRIC_PATH) -> Agreement:
    """The project's agreement metric, ``agreement(img, ref)``, loaded from its own file."""
    if not path.is_file():
        raise FileNotFoundError(f"agreement metric not found: {path}")
    spec = importlib.util.spec_from_file_location("compare_to_reference", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        raise ValueError(f"{path}: needs {exc.name} (pip install -e '.[test]')") from None
    return module.agreement


def load_reference(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The reference SR image (float64), checked to be one 2-D image of ``shape``."""
    if not path.is_file():
        raise FileNotFoundError(f"reference image not found: {path}")
    ref = np.squeeze(np.asarray(tifffile.imread(path), np.float64))
    if ref.shape != shape:
        raise ValueError(f"{path}: expected one {shape[0]}x{shape[1]} image, got shape {ref.shape}")
    return ref


def machine_info() -> dict[str, Any]:
    """CPU count, model and whether bfloat16 matrix units (AVX-512 BF16, AMX) exist."""
    model, flags = "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": bool(flags & {"amx_bf16", "amx_tile", "amx_int8"}),
    }


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
        "wiener_w": round(float(recon.wiener_w), 4),
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
