"""SMLM localisation against ground truth at two densities, and speed, beside Picasso.

Two simulated acquisitions (:mod:`simulators.smlm`) of the same prior-free structure
(segments, rings and points of :mod:`simulators.fluctuation_fields`) at the profile's
140 mW: ``low`` without activation (dyes seen per frame ~0.3 per µm² of field) and ``high``
with 405 nm activation (~2 per µm²). On each, srlive's :func:`localize` and the peer Picasso
(identify + MLE Gaussian fit, in its own venv) localise the same frames; both are scored by
:func:`srlive.recon.smlm.match.score` (Hungarian matching in each frame within 50 nm, as in
the SMLM challenge): Jaccard index, lateral RMSE of matched localisations and bias. The
reference for the errors is the ideal Cramér-Rao bound of each true emitter matched
(:func:`srlive.recon.smlm.crlb.lateral_crlb_nm`: its detected photons and background, a
Gaussian PSF of the width srlive fits, the read noise): the RMS of error/bound over all
matches (1 = at the bound; dim partial-frame events have bounds of tens of nm, so a plain
RMS of bounds would be dominated by them), and the RMSE beside the RMS bound over the
bright events (>= 1000 detected photons). The median bound each method reports is given.
``astigmatic_3d``: srlive alone, calibrated on a simulated bead z-stack, on a sparse
burst with depths in ±200 nm (Jaccard, lateral and axial RMSE, median bounds).

Picasso's detection threshold (minimum net gradient) is swept and its best Jaccard per
dataset kept (its speed is timed at that setting); srlive runs its defaults. Throughput is
frames per second of localisation (detection + fitting, excluding reading the frames) for
both, measured in one run, one after the other, on this machine; the ratio is srlive's
over Picasso's (``throughput_ratio``). On a machine shared with other jobs the wall times
swing with their load, so the CPU time each spent (all its threads) is reported too, and
``cpu_time_ratio`` = Picasso's CPU seconds over srlive's. srlive fits on ``workers``
threads (one torch thread each); Picasso uses its own threading (numba, all cores).

Picasso (picassosr 0.11.3) runs in its own venv (``benchmarks/peers/picasso/setup_env.sh``)
through ``run_peer.py`` in a subprocess, on a temporary .npy of the same raw frames with the
same camera (offset, gain, read noise as a uniform sCMOS map) and fitting box; its
localisations come back in camera pixels with pixel ``k``'s centre at ``k`` and are
converted to srlive's nm from the frame's corner here. A missing venv: srlive alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulators.fluctuation_fields import prior_free_emitters
from simulators.smlm import SMLMFrames, simulate_smlm, stationary_density_per_um2
from srlive.bench.common import REPO_ROOT, positive
from srlive.recon.offline import finite_json
from srlive.recon.smlm.crlb import lateral_crlb_nm
from srlive.recon.smlm.localize import LocalizeSettings, SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.match import MATCH_RADIUS_NM, match_pairs, score

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "picasso" / "run_peer.py"
DEFAULT_PEER_PYTHON = REPO_ROOT / ".peers" / "picasso" / "bin" / "python"
PEER_NOT_SET_UP = "not set up: run benchmarks/peers/picasso/setup_env.sh"
PEER_TIMEOUT_S = 3600.0


def peer_python(given: str | Path | None) -> Path | None:
    """The peer venv's python, or None when it is not set up."""
    path = Path(given) if given else DEFAULT_PEER_PYTHON
    return path if path.is_file() else None


def run_picasso(
    python: Path,
    frames: np.ndarray,
    camera: dict[str, float],
    pixel_nm: float,
    box: int,
    min_net_gradients: list[float],
    repeats: int,
    fit: str = "gaussmle",
) -> dict[str, Any]:
    """Picasso's localisations at each minimum net gradient, in nm, and its summary."""
    with tempfile.TemporaryDirectory(prefix="srlive-picasso-") as tmp:
        movie = Path(tmp) / "movie.npy"
        np.save(movie, np.ascontiguousarray(frames, np.uint16))
        out = Path(tmp) / "out"
        command = [
            str(python),
            str(PEER_SCRIPT),
            str(movie),
            str(out),
            "--baseline", str(camera["offset_adu"]),
            "--sensitivity", str(camera["e_per_adu"]),
            "--read-noise-e", str(camera["read_noise_e"]),
            "--pixel-nm", str(pixel_nm),
            "--box", str(box),
            "--fit", fit,
            "--repeats", str(repeats),
            "--min-ng", *(str(v) for v in min_net_gradients),
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PEER_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"Picasso peer failed (exit {done.returncode}): {tail[0]}")
        summary = json.loads((out / "summary.json").read_text())
        locs = []
        for entry in summary["runs"]:
            data = np.load(out / entry["locs_path"])
            locs.append(
                {
                    "frame": data["frame"].astype(np.int64),
                    "x_nm": (data["x"].astype(np.float64) + 0.5) * pixel_nm,
                    "y_nm": (data["y"].astype(np.float64) + 0.5) * pixel_nm,
                    "uncertainty_x_nm": data["lpx"].astype(np.float64) * pixel_nm,
                    "uncertainty_y_nm": data["lpy"].astype(np.float64) * pixel_nm,
                    "photons": data["photons"].astype(np.float64),
                }
            )
    return {"summary": summary, "locs": locs}


DENSITIES = {"low": 0.0, "high": 1.5}  # 405 nm activation (mW) of each dataset
DYES_PER_UM2 = 150.0  # labelled dyes per µm² of field
PICASSO_MIN_NG = (250.0, 500.0, 1000.0, 2000.0, 4000.0)  # the sweep of its threshold
BRIGHT_PHOTONS = 1000.0  # detected photons of a "bright" event (RMSE against the bound)


@dataclass(frozen=True)
class SMLMBenchOptions:
    """Options of :func:`bench_smlm`."""

    size: int = 128
    """camera pixels per side"""
    frames: int = 1000
    """frames per dataset"""
    repeats: int = 3
    """timed localisation runs per method (median reported)"""
    workers: int = 0
    """srlive's fitting threads (0: one per core, at most 4)"""
    peer_python: str | None = None
    """the Picasso venv's python (default .peers/picasso/bin/python)"""
    seed: int = 0


def _emitters(size_nm: float, seed: int):
    """Prior-free dyes at DYES_PER_UM2 over the field (a random subset of a denser draw)."""
    target = int(DYES_PER_UM2 * (size_nm / 1000) ** 2)
    kinds = ("segments", "rings", "points")
    em = prior_free_emitters(kinds, (size_nm, size_nm), seed=seed, density=1.0)
    factor = 1.0
    while len(em) < target:
        factor *= 1.5
        em = prior_free_emitters(kinds, (size_nm, size_nm), seed=seed, density=factor)
    keep = np.sort(np.random.default_rng(seed).choice(len(em), target, replace=False))
    return type(em)(em.positions_nm[keep], em.brightness[keep], em.field_nm)


def make_dataset(opts: SMLMBenchOptions, activation_mw: float, seed: int) -> SMLMFrames:
    size_nm = opts.size * 65.0
    return simulate_smlm(
        _emitters(size_nm, opts.seed), opts.frames, activation_mw=activation_mw, seed=seed
    )


def _rms(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values**2))) if len(values) else np.nan


def ideal_crlb(burst: SMLMFrames, truth_index: np.ndarray, sigma_nm: float) -> np.ndarray:
    """The lateral CRLB (nm) of each true emitter given: its detected photons and the
    background under it, a Gaussian PSF of ``sigma_nm``, the camera's read noise."""
    camera = burst.camera
    truth = burst.truth
    p = burst.pixel_nm
    row = np.clip((truth["y_nm"][truth_index] / p).astype(int), 0, burst.frames.shape[1] - 1)
    col = np.clip((truth["x_nm"][truth_index] / p).astype(int), 0, burst.frames.shape[2] - 1)
    background = burst.background_photons[row, col] * camera.qe
    subpixel = np.stack([truth["y_nm"][truth_index], truth["x_nm"][truth_index]], 1) / p % 1
    photons = truth["photons"][truth_index] * camera.qe
    return lateral_crlb_nm(photons, background, sigma_nm, p, camera.read_noise_e, subpixel=subpixel)


def _scored(columns: dict[str, np.ndarray], burst: SMLMFrames, sigma_nm: float) -> dict[str, Any]:
    """The match score, and the errors against the ideal CRLB of the emitters matched:
    over all matches in units of each one's bound (1: at the bound), and RMSE against RMS
    bound over the bright events (>= BRIGHT_PHOTONS detected photons)."""
    result = score(columns, burst.truth).to_dict()
    found, truth = match_pairs(columns, burst.truth)
    error = np.hypot(
        columns["x_nm"][found] - burst.truth["x_nm"][truth],
        columns["y_nm"][found] - burst.truth["y_nm"][truth],
    )
    bound = ideal_crlb(burst, truth, sigma_nm)
    reported = np.hypot(columns["uncertainty_x_nm"][found], columns["uncertainty_y_nm"][found])
    bright = burst.truth["photons"][truth] * burst.camera.qe >= BRIGHT_PHOTONS
    result.update(
        ideal_crlb_median_nm=_round(np.median(bound) if len(bound) else np.nan),
        reported_crlb_median_nm=_round(np.nanmedian(reported) if len(found) else np.nan),
        rmse_in_crlb_units=_round(_rms(error / bound)),
        bright_matches=int(bright.sum()),
        bright_rmse_lateral_nm=_round(_rms(error[bright])),
        bright_ideal_crlb_rms_nm=_round(_rms(bound[bright])),
        localizations=len(columns["frame"]),
    )
    return result


def _round(value: float) -> float:
    return round(float(value), 3)


def _camera(burst: SMLMFrames) -> SMLMCamera:
    """The simulated camera's constants, as both methods are told them."""
    cam = burst.camera
    return SMLMCamera(
        offset_adu=cam.offset_adu, e_per_adu=cam.e_per_adu, read_noise_e=cam.read_noise_e
    )


def _time_srlive(burst: SMLMFrames, settings: LocalizeSettings, repeats: int):
    """Localisations, wall seconds per run and CPU seconds (all threads) per run."""
    optics = SMLMOptics(pixel_nm=burst.pixel_nm)  # NA 1.49, 670 nm: the objective, the dye
    camera, frames = _camera(burst), burst.frames
    localize(frames[:8], optics, camera, settings)  # warm-up: torch, scipy
    seconds, cpu, locs = [], [], None
    for _ in range(max(repeats, 1)):
        start, start_cpu = time.perf_counter(), time.process_time()
        locs = localize(frames, optics, camera, settings)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return locs, seconds, cpu


def _picasso(python, burst: SMLMFrames, repeats: int, sigma_nm: float) -> dict[str, Any]:
    camera, p = _camera(burst).model_dump(), burst.pixel_nm
    sweep = run_picasso(python, burst.frames, camera, p, 7, list(PICASSO_MIN_NG), 0)
    scores = [score(locs, burst.truth).jaccard for locs in sweep["locs"]]
    best = int(np.nanargmax(scores))
    timed = run_picasso(python, burst.frames, camera, p, 7, [PICASSO_MIN_NG[best]], repeats)
    run = timed["summary"]["runs"][0]
    result = _scored(timed["locs"][0], burst, sigma_nm)
    result.update(
        min_net_gradient=PICASSO_MIN_NG[best],
        sweep_jaccard={str(k): round(v, 4) for k, v in zip(PICASSO_MIN_NG, scores, strict=True)},
        seconds=round(run["seconds"], 3),
        seconds_repeats=[round(v, 3) for v in run["seconds_repeats"]],
        cpu_seconds=round(run["cpu_seconds"], 3),
        identify_s=round(run["identify_s"], 3),
        fit_s=round(run["fit_s"], 3),
        frames_per_s=round(len(burst.frames) / run["seconds"], 1),
        warmup_s=round(timed["summary"]["warmup_s"], 2),
    )
    return {"result": result, "peer": timed["summary"]["peer"], "host": timed["summary"]["host"]}


def astigmatic_3d(opts: SMLMBenchOptions) -> dict[str, Any]:
    """srlive's astigmatic 3D: calibrated on a bead z-stack of the simulator's astigmatic
    pupil PSF (80 nm rms), then a sparse burst with depths uniform in ±200 nm."""
    from simulators.camera_model import CameraModel
    from simulators.smlm import uniform_emitters
    from simulators.smlm_psf import PSFRenderer, PupilOptics
    from srlive.recon.smlm.calibrate import calibrate_astigmatism

    optics = PupilOptics(astigmatism_nm=80.0, z_range_nm=700.0)
    rng = np.random.default_rng(opts.seed + 5)
    z = np.arange(-600, 601, 25.0)
    grid = np.arange(3) * 20 + 12.4
    ys, xs = (a.ravel() for a in np.meshgrid(grid, grid + 0.3, indexing="ij"))
    frame = np.repeat(np.arange(len(z)), len(ys))
    expected = PSFRenderer(optics).render(
        (64, 64), frame, len(z), np.tile(ys, len(z)), np.tile(xs, len(z)),
        np.full(len(frame), 20000.0), np.repeat(z, len(ys)),
    )  # fmt: skip
    stack = np.stack([CameraModel().expose(im + 50, 10.0, rng) for im in expected])
    calibration = calibrate_astigmatism(stack, z, SMLMOptics())
    size_nm = opts.size * 65.0
    emitters = uniform_emitters(int(0.07 * opts.size**2), (size_nm, size_nm), seed=opts.seed + 6)
    depth = np.random.default_rng(opts.seed + 7).uniform(-200, 200, len(emitters))
    burst = simulate_smlm(
        emitters, min(opts.frames, 300), z_nm=depth, optics=optics, seed=opts.seed + 8
    )
    settings = LocalizeSettings(model="astigmatic", astigmatism=calibration, box=9)
    locs = localize(burst.frames, SMLMOptics(), _camera(burst), settings)
    result = score(locs.columns, burst.truth).to_dict()
    return {
        "astigmatism_nm": 80.0,
        "calibrated_range_nm": [round(calibration.z_min_nm, 1), round(calibration.z_max_nm, 1)],
        "frames": len(burst.frames),
        "emitters_per_um2": round(burst.density_per_um2(), 3),
        **{k: result[k] for k in ("jaccard", "rmse_lateral_nm", "rmse_z_nm", "true_positives")},
        "median_uncertainty_nm": _round(np.median(locs["uncertainty_nm"])),
        "median_uncertainty_z_nm": _round(np.nanmedian(locs["uncertainty_z_nm"])),
    }


def bench_smlm(opts: SMLMBenchOptions | None = None) -> dict[str, Any]:
    """Both densities: truth, srlive and (when set up) Picasso side by side, as JSON."""
    opts = opts or SMLMBenchOptions()
    python = peer_python(opts.peer_python)
    settings = LocalizeSettings(workers=opts.workers)
    datasets = []
    peer_info: dict[str, Any] = {"status": PEER_NOT_SET_UP} if python is None else {}
    for i, (name, activation) in enumerate(DENSITIES.items()):
        burst = make_dataset(opts, activation, seed=opts.seed + 10 + i)
        locs, seconds, cpu = _time_srlive(burst, settings, opts.repeats)
        sigma_nm = float(np.median(locs["sigma_x_nm"]))  # the Gaussian closest to the PSF
        ours = _scored(locs.columns, burst, sigma_nm)
        median = statistics.median(seconds)
        ours.update(
            seconds=round(median, 3),
            seconds_repeats=[round(s, 3) for s in seconds],
            cpu_seconds=round(statistics.median(cpu), 3),
            frames_per_s=round(len(burst.frames) / median, 1),
        )
        entry: dict[str, Any] = {
            "density": name,
            "activation_mw": activation,
            "frames": len(burst.frames),
            "frame_shape": list(burst.frames.shape[1:]),
            "emitters_per_um2": round(burst.density_per_um2(), 3),
            "expected_emitters_per_um2": round(
                stationary_density_per_um2(DYES_PER_UM2, 140.0, activation), 3
            ),
            "truth_localizations": len(burst.truth["frame"]),
            "median_truth_photons": round(float(np.median(burst.truth["photons"])), 1),
            "crlb_sigma_nm": round(sigma_nm, 2),
            "srlive": ours,
        }
        if python is not None:
            peer = _picasso(python, burst, opts.repeats, sigma_nm)
            entry["picasso"] = peer["result"]
            entry["throughput_ratio"] = round(
                ours["frames_per_s"] / peer["result"]["frames_per_s"], 3
            )
            entry["cpu_time_ratio"] = round(peer["result"]["cpu_seconds"] / ours["cpu_seconds"], 3)
            peer_info = {"status": "ran", **peer["peer"], "host": peer["host"]}
        datasets.append(entry)
    return finite_json(
        {
            "benchmark": "smlm",
            "options": asdict(opts),
            "match_radius_nm": MATCH_RADIUS_NM,
            "srlive_settings": settings.model_dump(mode="json"),
            "dyes_per_um2": DYES_PER_UM2,
            "picasso_min_net_gradient_sweep": list(PICASSO_MIN_NG),
            "peer": peer_info,
            "datasets": datasets,
            "astigmatic_3d": astigmatic_3d(opts),
        }
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=positive(int), default=128, help="frame size, px (128)")
    parser.add_argument(
        "--frames", type=positive(int), default=1000, help="frames per density (1000)"
    )
    parser.add_argument(
        "--repeats", type=positive(int), default=3, help="timed runs per method (3)"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="srlive's fitting threads (0: one per core)"
    )
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="the Picasso venv's python (default .peers/picasso/bin/python)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.size < 16 or args.frames < 10:
        raise ValueError("smlm: --size must be >= 16 and --frames >= 10")
    return bench_smlm(
        SMLMBenchOptions(
            size=args.size,
            frames=args.frames,
            repeats=args.repeats,
            workers=args.workers,
            peer_python=str(args.peer_python) if args.peer_python else None,
        )
    )
