"""Making the optimizer's prior on the simulator (``srlive optimizer-prior``): training code.

Simulated fields of several structures at many light levels are reconstructed (Wiener SIM
for sim9, the shipped ``dl-sim3`` for sim3) and scored against their ground truth; the
quality curve per modality, the GP's prior and noise spread come from those rows (see
:mod:`srlive.optimize.prior` for what the prior holds). Like the models' training data, this
is the one place the optimizer imports the simulator.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srlive.optimize.prior import Prior, QualityCurve

PRIOR_STRUCTURES = ("microtubules", "mitochondria")  # ER is held out (a bench sample type)
PRIOR_SEED_BASE = 500_000_000  # far from the bench's and the training streams' seeds


def fit_curve(snr: np.ndarray, quality: np.ndarray) -> QualityCurve:
    """Least-squares logistic fit of quality against log10 SNR."""
    from scipy.optimize import curve_fit

    x = np.log10(np.maximum(snr, 1e-3))

    def model(x, lo, hi, c, w):
        return lo + (hi - lo) / (1.0 + np.exp(-(x - c) / w))

    p0 = [float(quality.min()), float(quality.max()), float(np.median(x)), 0.3]
    (lo, hi, c, w), _ = curve_fit(model, x, quality, p0=p0, maxfev=20000)
    return QualityCurve(float(lo), float(hi), float(c), float(abs(w)))


@dataclass(frozen=True)
class PriorSettings:
    """How the prior is made (recorded on its card)."""

    size: int = 128
    seeds_per_structure: int = 4
    levels: int = 12
    min_light: float = 2.0  # photons per unit density per camera pixel, ×20 (mW·ms at default)
    max_light: float = 400.0
    modalities: tuple[str, ...] = ("sim9", "sim3")


def _field_rows(
    kind: str, seed: int, settings: PriorSettings, models: dict[str, Callable]
) -> list[dict[str, float]]:
    from simulators.camera_model import CameraModel
    from simulators.imaging import FringeCache, default_sim_patterns, expected_from_cache
    from simulators.optics import blur, otf_2d
    from simulators.samples import make_sample
    from srlive.learn.data import EMISSION_NM, HI_NM, NA, sim_target_otf
    from srlive.learn.eval_fields import to_hi_grid
    from srlive.recon.set_metrics import NoiseModel, set_metrics
    from srlive.recon.similarity import ssim
    from srlive.recon.wiener_sim import WienerSIM

    size = settings.size
    hi = (2 * size, 2 * size)
    rng = np.random.default_rng(PRIOR_SEED_BASE + seed)
    density = make_sample(kind, hi, HI_NM, seed=PRIOR_SEED_BASE + seed, motion=False).density()
    cache = FringeCache(density, otf_2d(hi, HI_NM, NA, EMISSION_NM), 2, HI_NM)
    patterns = default_sim_patterns(fov_nm=(size * 65.0, size * 65.0))
    camera, noise = CameraModel(), NoiseModel()
    target = blur(density, sim_target_otf(hi))
    margin = size // 16

    def raw(scale: float) -> np.ndarray:
        return np.stack(
            [camera.expose(expected_from_cache(cache, p, scale), 10.0, rng) for p in patterns]
        )

    wiener = WienerSIM((size, size), 65.0, NA, EMISSION_NM)
    wiener.calibrate(raw(4000.0))  # the instrument's pattern calibration, at full light
    rows = []
    for light in np.geomspace(settings.min_light, settings.max_light, settings.levels):
        frames = raw(20.0 * light)
        for modality in settings.modalities:
            if modality == "sim9":
                sr = to_hi_grid(wiener.reconstruct(frames))
                used = frames
            elif modality in models:
                used = frames[[0, 3, 6]]
                sr = models[modality](used).image
            else:
                continue
            metrics, _ = set_metrics(used, noise, 20.0, light / 20.0)
            score = ssim(sr[margin:-margin, margin:-margin], target[margin:-margin, margin:-margin])
            rows.append(
                {
                    "kind": kind,
                    "seed": seed,
                    "modality": modality,
                    "light": float(light),
                    "snr": metrics["snr"],
                    "ssim": score,
                }
            )
    return rows


def make_prior(
    settings: PriorSettings = PriorSettings(),
    structures: Sequence[str] = PRIOR_STRUCTURES,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Prior, list[dict[str, Any]]]:
    """Simulate fields × light levels, fit the quality curves; returns (prior, raw rows)."""
    models: dict[str, Callable] = {}
    if "sim3" in settings.modalities:
        from srlive.recon.learned.infer import learned

        model = learned("dl-sim3", "cpu")
        models["sim3"] = lambda frames: model(frames, trust=False)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    jobs = [(k, s) for k in structures for s in range(settings.seeds_per_structure)]
    for i, (kind, seed) in enumerate(jobs):
        rows.extend(_field_rows(kind, seed, settings, models))
        if progress:
            progress(i + 1, len(jobs))
    curves, residual_sd, noise_sd = {}, [], []
    for modality in settings.modalities:
        sel = [r for r in rows if r["modality"] == modality]
        if not sel:
            continue
        snr = np.array([r["snr"] for r in sel])
        quality = np.array([r["ssim"] for r in sel])
        curve = fit_curve(snr, quality)
        curves[modality] = curve
        residual = quality - curve(snr)
        residual_sd.append(float(np.std(residual)))
        # noise: residual differences between neighbouring light levels of the same field
        by_field: dict[tuple[str, int], list[float]] = {}
        for r, res in zip(sel, residual, strict=True):
            by_field.setdefault((r["kind"], r["seed"]), []).append(float(res))
        diffs = [np.diff(v) for v in by_field.values() if len(v) > 1]
        noise_sd.append(float(np.std(np.concatenate(diffs)) / math.sqrt(2)) if diffs else 0.02)
    prior = Prior(
        curves=curves,
        prior_sd=max(float(np.max(residual_sd)), 0.02),
        noise_sd=max(float(np.median(noise_sd)), 0.01),
        info={
            "structures": list(structures),
            "settings": asdict(settings),
            "rows": len(rows),
            "residual_sd": residual_sd,
            "seconds": round(time.perf_counter() - start, 1),
            "made": time.strftime("%Y-%m-%d"),
        },
    )
    return prior, rows


def write_prior(prior: Prior, path: Path, command: str) -> Path:
    """Write the prior JSON and its card (``.md`` beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prior.to_json(), indent=2) + "\n")
    curves = "\n".join(
        f"| {m} | {c.lo:.3f} | {c.hi:.3f} | {c.centre:.3f} | {c.width:.3f} |"
        for m, c in prior.curves.items()
    )
    card = f"""# Optimizer prior

Made by `{command}` on {prior.info.get("made")} ({prior.info.get("rows")} simulated sets,
{prior.info.get("seconds")} s).

**What it is.** The expected SR quality (SSIM against the ground-truth density blurred to
the 2D-SIM limit, after an affine intensity fit, 1/16 border ignored) of a raw SIM set as a
function of the per-frame peak SNR measured from the raw frames (99th percentile of the
1-px-smoothed mean frame above the 5th percentile, shot + read noise), fitted per modality
as a logistic in log10 SNR:

| modality | lo | hi | centre (log10 SNR) | width |
|---|---|---|---|---|
{curves}

sim9 is reconstructed by Wiener SIM (parameters calibrated once per field at full light, as an
instrument calibration would), sim3 by the shipped `dl-sim3` model.

**Data.** Structures {", ".join(prior.info.get("structures", []))} (ER is held out: it is a
bench sample type), {prior.info.get("settings", {}).get("seeds_per_structure")} seeds each
(seed base {PRIOR_SEED_BASE}, disjoint from the bench's), 128×128 camera pixels, light levels
log-spaced over {prior.info.get("settings", {}).get("min_light")}–
{prior.info.get("settings", {}).get("max_light")} mW·ms at the simulator's default brightness,
the simulator's sCMOS model (QE 0.8, 1.6 e⁻ read noise, 0.46 e⁻/ADU, offset 100 ADU).

**Gaussian-process prior.** Output scale {prior.prior_sd:.3f} (largest residual SD of the true
SSIM around the curve across fields), noise {prior.noise_sd:.3f} (SD of residual differences
between neighbouring light levels of one field, /√2), lengthscale {prior.lengthscale_decades}
decades of expected signal (set, not fitted). Bleaching rate before a sample's own fit:
k = {prior.bleach_k_per_mj} /mJ.

**Limits.** Only what the simulator models: no background autofluorescence, no motion blur
(static samples), one emission band. On real data the curve is a starting point that the
online GP corrects per sample.
"""
    path.with_suffix(".md").write_text(card)
    return path
