"""``dl-srrf5`` against classical eSRRF on held-out prior-free structures, with the ablation.

Every field is a 100-frame burst made by the project's own burst simulator
(:func:`simulators.fluctuation.simulate_burst`: default dye, 20 mW, 10 ms, NA 1.49, 510 nm)
of dyes on a prior-free layout (:mod:`simulators.fluctuation_fields`) with seeds from
:data:`~srlive.learn.fluctuation.HELD_OUT_SEED_BASE` upwards, far from every training
stream, including the ``spirals`` generator that training never used. Methods, all scored by
SSIM (after an affine intensity fit, borders of 1/16 of the field ignored) against the same
truth, the burst's 100-frame time-averaged dyes blurred to FWHM = widefield FWHM / √2:

* ``dl-srrf5``: the first 5 frames;
* ``dl-srrf5 (5 x mean)``: the ablation, 5 copies of those frames' mean (no fluctuations);
* ``widefield (5)`` / ``widefield (100)``: the mean of the first 5 / all 100 frames,
  Fourier-upsampled to the 2x grid;
* ``esrrf-100``: eSRRF of all 100 frames at magnification 2 (the 2x grid), with the
  parameter set of a small sweep (radius, sensitivity, temporal mode) that scores best on
  these same fields — the most favourable choice for eSRRF.
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from simulators.fluctuation import Burst, simulate_burst
from simulators.fluctuation_fields import prior_free_emitters
from srlive.learn.fluctuation import (
    FRAMES,
    HELD_OUT_PRIOR_FREE,
    HELD_OUT_SEED_BASE,
    HI_NM,
    TRAIN_PRIOR_FREE,
    sr_fwhm_nm,
)
from srlive.recon.fluctuation import esrrf_sensitivities
from srlive.recon.learned.geometry import CAMERA_NM
from srlive.recon.learned.infer import LearnedReconstructor
from srlive.recon.similarity import ssim
from srlive.recon.wiener_sim import fourier_upsample

EVAL_KINDS = (*TRAIN_PRIOR_FREE, *HELD_OUT_PRIOR_FREE)
OFFSET_ADU = 100.0
ESRRF_RADII = (1.0, 1.5, 2.0)
ESRRF_SENSITIVITIES = (1.0, 2.0)
ESRRF_TEMPORAL = ("AVG", "VAR")


def held_out_burst(
    kind: str, size: int, index: int, frames: int = 100, power_mw: float = 20.0
) -> Burst:
    """One held-out burst: a prior-free layout (seed from the held-out range) imaged."""
    seed = HELD_OUT_SEED_BASE + zlib.crc32(f"{kind}/{size}/{index}".encode()) % 10_000_000
    emitters = prior_free_emitters(kind, (size * CAMERA_NM, size * CAMERA_NM), seed)
    return simulate_burst(emitters, frames, power_mw, rng=np.random.default_rng(seed))


def to_hi_grid(image: np.ndarray) -> np.ndarray:
    """Register a Fourier-upsampled camera-grid image onto the 2x grid (half-pixel shift)."""
    from scipy import ndimage

    spectrum = ndimage.fourier_shift(np.fft.fft2(image), (0.5, 0.5))
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def widefield(frames: np.ndarray) -> np.ndarray:
    """Mean frame minus offset on the 2x grid."""
    mean = frames.astype(np.float32).mean(axis=0) - np.float32(OFFSET_ADU)
    return to_hi_grid(fourier_upsample(mean))


def score_ssim(image: np.ndarray, truth: np.ndarray) -> float:
    margin = image.shape[0] // 16
    return ssim(image[margin:-margin, margin:-margin], truth[margin:-margin, margin:-margin])


def esrrf_grid() -> list[tuple[float, float, str]]:
    """(radius, sensitivity, temporal) of the eSRRF sweep."""
    return list(itertools.product(ESRRF_RADII, ESRRF_SENSITIVITIES, ESRRF_TEMPORAL))


def esrrf_scores(frames: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """SSIM of eSRRF (m = 2, macro-pixel correction) for every set of the sweep."""
    out = {}
    for radius, temporal in itertools.product(ESRRF_RADII, ESRRF_TEMPORAL):
        images = esrrf_sensitivities(
            frames, 2, radius, ESRRF_SENSITIVITIES, temporal, True, OFFSET_ADU
        )
        for s, image in zip(ESRRF_SENSITIVITIES, images, strict=True):
            out[f"r={radius:g},s={s:g},{temporal}"] = score_ssim(image, truth)
    return out


def field_scores(
    model: LearnedReconstructor, burst: Burst, esrrf_sets: Sequence[str] | None = None
) -> dict[str, float]:
    """SSIM of every method on one burst (``esrrf_sets``: None = the whole sweep)."""
    truth = burst.truth_image(HI_NM, sr_fwhm_nm())
    first = burst.frames[:FRAMES]
    mean = first.astype(np.float32).mean(axis=0)
    result = model(first)
    ablated = model(np.repeat(mean[None], FRAMES, axis=0))
    row = {
        "dl-srrf5": score_ssim(result.image, truth),
        "dl-srrf5 (5 x mean)": score_ssim(ablated.image, truth),
        "widefield (5)": score_ssim(widefield(first), truth),
        "widefield (100)": score_ssim(widefield(burst.frames), truth),
        "confidence": result.confidence,
        "confidence (5 x mean)": ablated.confidence,
    }
    if esrrf_sets is None:
        row.update({f"esrrf-100 {k}": v for k, v in esrrf_scores(burst.frames, truth).items()})
    else:
        for name in esrrf_sets:
            r, s, temporal = _parse(name)
            image = esrrf_sensitivities(burst.frames, 2, r, (s,), temporal, True, OFFSET_ADU)[0]
            row[f"esrrf-100 {name}"] = score_ssim(image, truth)
    return row


def _parse(name: str) -> tuple[float, float, str]:
    r, s, temporal = name.split(",")
    return float(r.split("=")[1]), float(s.split("=")[1]), temporal


def gains(row: dict[str, float]) -> dict[str, float]:
    """What dl-srrf5 adds over the 5-frame widefield and what share the ablation keeps."""
    added = row["dl-srrf5"] - row["widefield (5)"]
    kept = row["dl-srrf5 (5 x mean)"] - row["widefield (5)"]
    return {"added": added, "kept": kept, "kept_share": kept / added if added > 0 else np.nan}


def evaluate_fluctuation(
    model: LearnedReconstructor,
    size: int = 96,
    fields_per_kind: int = 4,
    kinds: Sequence[str] = EVAL_KINDS,
    progress: bool = False,
) -> dict[str, Any]:
    """Medians over held-out fields of every method, per kind and overall; JSON-ready."""
    from tqdm import tqdm

    start = time.perf_counter()
    rows = []
    jobs = [(k, i) for k in kinds for i in range(fields_per_kind)]
    for kind, i in tqdm(jobs, desc="evaluate dl-srrf5", disable=not progress):
        rows.append({"kind": kind, **field_scores(model, held_out_burst(kind, size, i))})
    sweep = [k for k in rows[0] if k.startswith("esrrf-100 ")]
    best = max(sweep, key=lambda k: float(np.median([r[k] for r in rows])))
    for r in rows:
        r["esrrf-100"] = r[best]

    def medians(subset: list[dict[str, Any]]) -> dict[str, float]:
        keys = [k for k in subset[0] if k != "kind"]
        out = {k: round(float(np.median([r[k] for r in subset])), 4) for k in keys}
        summary = gains(out)
        out.update({k: round(float(v), 4) for k, v in summary.items()})
        return out

    return {
        "size": size,
        "fields": len(rows),
        "fields_per_kind": fields_per_kind,
        "kinds": list(kinds),
        "held_out_generators": list(HELD_OUT_PRIOR_FREE),
        "truth": f"100-frame time-averaged dyes blurred to FWHM {sr_fwhm_nm():.1f} nm "
        "(widefield FWHM / sqrt 2), 2x grid",
        "burst": "simulate_burst defaults: SwitchingDye, 20 mW, 10 ms, NA 1.49, 510 nm, 65 nm",
        "esrrf_best": best.removeprefix("esrrf-100 "),
        "overall": medians(rows),
        "by_kind": {k: medians([r for r in rows if r["kind"] == k]) for k in kinds},
        "wall_s": round(time.perf_counter() - start, 1),
    }
