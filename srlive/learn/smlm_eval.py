"""dl-smlm on data it never saw: scores, calibration of its uncertainty, use of the signal.

Held-out bursts come from the simulator's SMLM physics (:func:`simulators.smlm.
simulate_smlm`: Markov photoswitching dyes under the excitation, not training's event
model) on prior-free structures drawn with seeds training never uses (:data:`EVAL_SEEDS`,
far below :data:`srlive.learn.smlm_data.TRAIN_SEED_BASE`), at the profile's 140 mW with
and without 405 nm activation (low and high density).

* :func:`calibration`: for the localisations matched to the truth (50 nm), the errors in
  units of the predicted sigma (calibrated: RMS 1, 68 % within 1 sigma) and the RMSE per
  bin of predicted sigma beside the bin's RMS sigma.
* :func:`signal_checks`: the same frames with the dyes removed (background and camera noise
  only) must give (almost) no localisations; one emitter, on for one frame between two
  without it, moved in steps must move its localisation by the same steps (slope 1) and
  give none in the frames without it.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from simulators.camera_model import CameraModel
from simulators.fluctuation import Emitters
from simulators.fluctuation_fields import prior_free_emitters
from simulators.smlm import SMLMFrames, simulate_smlm
from simulators.smlm_psf import PSFRenderer, PupilOptics
from srlive.recon.smlm.learned import LearnedLocalizeSettings, localize_learned
from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics
from srlive.recon.smlm.match import match_pairs, score
from srlive.recon.smlm.table import Localizations

EVAL_SEEDS = (101, 102)  # held-out structures: training's seeds start at 10,000,000
VALIDATION_SEEDS = (201, 202)  # the threshold and the sigma scale are chosen on these
THRESHOLDS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
DENSITIES = {"low": 0.0, "high": 1.5}  # 405 nm activation (mW), as `srlive bench smlm`
DYES_PER_UM2 = 150.0


def heldout_burst(size: int, frames: int, activation_mw: float, seed: int) -> SMLMFrames:
    """A burst of prior-free structures (segments, rings, points) at 150 dyes per µm²."""
    field = size * 65.0
    target = int(DYES_PER_UM2 * (field / 1000) ** 2)
    density, em = 1.0, prior_free_emitters(("segments", "rings", "points"), (field, field), seed)
    while len(em) < target:
        density *= 1.5
        em = prior_free_emitters(("segments", "rings", "points"), (field, field), seed, density)
    keep = np.sort(np.random.default_rng(seed).choice(len(em), target, replace=False))
    em = Emitters(em.positions_nm[keep], em.brightness[keep], em.field_nm)
    return simulate_smlm(em, frames, activation_mw=activation_mw, seed=seed + 1000)


def burst_camera(burst: SMLMFrames) -> SMLMCamera:
    cam = burst.camera
    return SMLMCamera(
        offset_adu=cam.offset_adu, e_per_adu=cam.e_per_adu, read_noise_e=cam.read_noise_e
    )


def calibration(columns: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """Predicted sigma against actual error over the matched localisations."""
    found, true = match_pairs(columns, truth)
    if len(found) == 0:
        return {"matches": 0}
    dx = columns["x_nm"][found] - truth["x_nm"][true]
    dy = columns["y_nm"][found] - truth["y_nm"][true]
    sx, sy = columns["uncertainty_x_nm"][found], columns["uncertainty_y_nm"][found]
    z = np.concatenate([dx / sx, dy / sy])
    sigma = np.sqrt((sx**2 + sy**2) / 2)
    error = np.sqrt((dx**2 + dy**2) / 2)  # per axis, as sigma
    edges = np.quantile(sigma, np.linspace(0, 1, 6))
    bins = []
    for lo, hi in itertools.pairwise(edges):
        sel = (sigma >= lo) & (sigma <= hi)
        bins.append(
            {
                "sigma_nm": [round(float(lo), 2), round(float(hi), 2)],
                "rms_predicted_nm": round(float(np.sqrt(np.mean(sigma[sel] ** 2))), 2),
                "rmse_per_axis_nm": round(float(np.sqrt(np.mean(error[sel] ** 2))), 2),
                "n": int(sel.sum()),
            }
        )
    return {
        "matches": len(found),
        "rms_normalised_error": round(float(np.sqrt(np.mean(z**2))), 3),
        "within_1_sigma": round(float(np.mean(np.abs(z) <= 1)), 3),
        "within_2_sigma": round(float(np.mean(np.abs(z) <= 2)), 3),
        "median_predicted_sigma_nm": round(float(np.median(sigma)), 2),
        "by_predicted_sigma": bins,
    }


def _removed_signal(burst: SMLMFrames, seed: int) -> np.ndarray:
    """The burst's frames with every dye removed: its background through its camera."""
    rng = np.random.default_rng(seed)
    expected = burst.background_photons.astype(np.float32)
    return np.stack([burst.camera.expose(expected, burst.exposure_ms, rng) for _ in burst.frames])


def _shifted_emitter(steps_nm: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One 3000-photon emitter at x0 + step (x0 mid-pixel) on 70 photons of background, on
    for one frame between two without it: ``(steps, 3, 32, 32)`` frames and the true x (nm)."""
    optics = PupilOptics()
    p = optics.pixel_nm
    n = len(steps_nm)
    x_nm = 16.3 * p + steps_nm
    expected = PSFRenderer(optics).render(
        (32, 32), np.arange(n), n, np.full(n, 15.6), x_nm / p, np.full(n, 3000.0)
    )
    rng = np.random.default_rng(seed)
    camera = CameraModel()
    triples = [[camera.expose(e * k + 70.0, 10.0, rng) for k in (0, 1, 0)] for e in expected]
    return np.asarray(triples), x_nm


def signal_checks(settings: LearnedLocalizeSettings, seed: int = 7) -> dict[str, Any]:
    """Does dl-smlm localise what the frames show? Removal and shift."""
    burst = heldout_burst(64, 60, DENSITIES["high"], EVAL_SEEDS[0])
    camera = burst_camera(burst)
    with_dyes = localize_learned(burst.frames, SMLMOptics(), camera, settings)
    without = localize_learned(_removed_signal(burst, seed), SMLMOptics(), camera, settings)
    steps = np.arange(0, 140, 10.0)
    frames, x_true = _shifted_emitter(steps, seed)
    found = [localize_learned(f, SMLMOptics(), SMLMCamera(), settings) for f in frames]
    middle = [f.in_frames(1, 2) for f in found]  # where the emitter is; none before or after
    x_found = np.array([m["x_nm"][0] if len(m) == 1 else np.nan for m in middle])
    ok = np.isfinite(x_found)
    slope = float(np.polyfit(x_true[ok], x_found[ok], 1)[0]) if ok.sum() >= 2 else float("nan")
    return {
        "removed": {
            "frames": len(burst.frames),
            "true_emitters": len(burst.truth["frame"]),
            "localizations_with_dyes": len(with_dyes),
            "localizations_dyes_removed": len(without),
        },
        "shift": {
            "steps_nm": steps.tolist(),
            "frames_with_one_localization": int(ok.sum()),
            "frames_without_the_emitter": 2 * len(found),
            "localizations_without_the_emitter": int(
                sum(len(f) - len(m) for f, m in zip(found, middle, strict=True))
            ),
            "slope": round(slope, 4),
            "max_abs_error_nm": round(float(np.nanmax(np.abs(x_found - x_true))), 2),
        },
    }


def validate(weights: str, size: int = 64, frames: int = 100) -> dict[str, Any]:
    """The detection threshold (best mean Jaccard of both densities) and the factor on the
    predicted sigmas that puts 68.3 % of the errors within 1 sigma, on validation bursts
    (seeds :data:`VALIDATION_SEEDS`: neither training's nor the held-out evaluation's)."""
    from srlive.recon.smlm.learned import smlm_model

    model = smlm_model(weights)
    bursts = [heldout_burst(size, frames, a, s)
              for a, s in zip(DENSITIES.values(), VALIDATION_SEEDS, strict=True)]  # fmt: skip
    sweep = {}
    for threshold in THRESHOLDS:
        settings = LearnedLocalizeSettings(weights=weights, threshold=threshold)
        scores = [
            score(localize_learned(b.frames, SMLMOptics(), burst_camera(b), settings).columns,
                  b.truth).jaccard
            for b in bursts
        ]  # fmt: skip
        sweep[threshold] = round(float(np.mean(scores)), 4)
    best = max(sweep, key=lambda t: sweep[t])
    settings = LearnedLocalizeSettings(weights=weights, threshold=best)
    z = []
    for b in bursts:
        locs = localize_learned(b.frames, SMLMOptics(), burst_camera(b), settings)
        found, true = match_pairs(locs.columns, b.truth)
        z.append((locs["x_nm"][found] - b.truth["x_nm"][true]) / locs["uncertainty_x_nm"][found])
        z.append((locs["y_nm"][found] - b.truth["y_nm"][true]) / locs["uncertainty_y_nm"][found])
    quantile = float(np.quantile(np.abs(np.concatenate(z)), 0.683))
    return {
        "threshold": best,
        "mean_jaccard_by_threshold": {str(k): v for k, v in sweep.items()},
        "sigma_scale": round(model.sigma_scale * quantile, 4),
        "data": f"{frames} frames of {size}² px per density, seeds {list(VALIDATION_SEEDS)}",
    }


def evaluate_heldout(
    settings: LearnedLocalizeSettings, size: int = 64, frames: int = 200
) -> dict[str, Any]:
    """Scores and calibration on held-out bursts at both densities, and the signal checks."""
    results: dict[str, Any] = {}
    for i, (name, activation) in enumerate(DENSITIES.items()):
        burst = heldout_burst(size, frames, activation, EVAL_SEEDS[i])
        locs: Localizations = localize_learned(burst.frames, SMLMOptics(),
                                               burst_camera(burst), settings)  # fmt: skip
        results[name] = {
            "emitters_per_um2": round(burst.density_per_um2(), 3),
            "score": score(locs.columns, burst.truth).to_dict(),
            "calibration": calibration(locs.columns, burst.truth),
        }
    results["signal"] = signal_checks(settings)
    results["data"] = (
        f"{frames} frames of {size}² px per density, prior-free structures of seeds "
        f"{list(EVAL_SEEDS)} (training: >= 10,000,000), simulate_smlm at 140 mW"
    )
    return results
