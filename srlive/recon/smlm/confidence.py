"""How far to trust dl-smlm on one acquisition: its conditions against the trained ranges.

A learned localiser is only as good as its training data covered the acquisition. The
weights say what they were trained on (``info["settings"]["ranges"]`` and the PSF width
in pixels those ranges span); :func:`smlm_confidence` compares with them what the
acquisition shows: the PSF width in camera pixels (from the optics), the background and
photons the network measured (medians) and the density of localisations per frame. Each
is ``in range`` or says by how much it is outside. With the network's median predicted
uncertainty beside, ``trusted`` is true only when everything is in range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from srlive.recon.smlm.localize import SMLMOptics
from srlive.recon.smlm.table import Localizations

SIGMA_PER_LAMBDA_NA = 0.21
SAMPLE_NA = 1.33  # the collected NA of an aqueous sample (training's pupil model)
DENSE_SLACK = 1.5  # localisations per frame may undercount the dyes on at high density


def _check(value: float, low: float, high: float) -> dict[str, Any]:
    if not np.isfinite(value):
        return {"value": None, "range": [low, high], "status": "not measured"}
    status = "in range"
    if value < low:
        status = f"{low / max(value, 1e-9):.2g}x below"
    elif value > high:
        status = f"{value / high:.2g}x above"
    return {"value": round(float(value), 3), "range": [low, high], "status": status}


def smlm_confidence(
    locs: Localizations, optics: SMLMOptics, info: dict[str, Any], qe: float = 0.8
) -> dict[str, Any]:
    """The acquisition against the weights' training ranges (``info``: the weights' header),
    and the median predicted uncertainty. ``qe`` turns trained photons into photoelectrons."""
    ranges = info.get("settings", {}).get("ranges", {})
    sigma_range = info.get("psf_sigma_px", [np.nan, np.nan])
    sigma_px = SIGMA_PER_LAMBDA_NA * optics.emission_nm / min(optics.na, SAMPLE_NA)
    sigma_px /= optics.pixel_nm
    n = len(locs)
    area_um2 = locs.frame_shape[0] * locs.frame_shape[1] * (locs.pixel_nm / 1000) ** 2
    frames = max(locs.n_frames, 1)
    density = n / frames / area_um2 if n else float("nan")
    checks = {"psf_sigma_px": _check(sigma_px, *sigma_range)}
    if "background_photons" in ranges:
        low, high = ranges["background_photons"]
        median = float(np.nanmedian(locs["background"])) if n else float("nan")
        checks["background_e"] = _check(median, low * qe, high * qe)
    if "photons_per_frame" in ranges:
        low, high = ranges["photons_per_frame"]
        median = float(np.nanmedian(locs["photons"])) if n else float("nan")
        checks["photons_e"] = _check(median, 0.05 * low * qe, high * qe)
    if "density_per_um2" in ranges:
        low, high = ranges["density_per_um2"]
        checks["density_per_um2"] = _check(density, 0.0, high * DENSE_SLACK)
    trusted = all(c["status"] == "in range" for c in checks.values())
    outside = [k for k, c in checks.items() if c["status"] not in ("in range", "not measured")]
    return {
        "trusted": trusted,
        "outside_training": outside,
        "checks": checks,
        "median_uncertainty_nm": round(float(np.nanmedian(locs["uncertainty_nm"])), 3)
        if n
        else None,
        "localizations_per_frame": round(n / frames, 3),
    }
