"""``dl-srrf5`` against classical eSRRF on held-out prior-free structures, with the ablation.

Every field is a 100-frame burst made by the project's own burst simulator
(:func:`simulators.fluctuation.simulate_burst`: default dye, 20 mW, 10 ms, NA 1.49, 510 nm)
of dyes on a prior-free layout (:mod:`simulators.fluctuation_fields`) with seeds from
:data:`~srlive.learn.fluctuation.HELD_OUT_SEED_BASE` upwards, far from every training
stream, including the ``spirals`` generator that training never used. Methods, all scored by
SSIM (after an affine intensity fit, borders of 1/16 of the field ignored) against the same
truth, the burst's 100-frame time-averaged dyes blurred to FWHM = widefield FWHM / √2 (the
squared PSF's width; fixed, whatever width a model was trained for), and, for comparison,
against the same dyes blurred to half the widefield FWHM (a sharper truth; the keys ending
in ``@half``):

* ``dl-srrf5``: the first 5 frames; ``ideal (5)``: the dyes' photons over those frames
  blurred as the truth, a perfect 5-frame image (it misses the dyes that stayed dark);
* ``dl-srrf5 (5 x mean)``: the ablation, 5 copies of those frames' mean (no fluctuations);
* ``widefield (5)`` / ``widefield (100)``: the mean of the first 5 / all 100 frames,
  Fourier-upsampled to the 2x grid; ``widefield (noise-free)``: the dyes' time-averaged image
  through the optics without noise (the ceiling of processing without fluctuations);
* ``esrrf-100``: eSRRF of all 100 frames at magnification 2 (the 2x grid), with the
  parameter set of a small sweep (radius, sensitivity, temporal mode) that scores best on
  these same fields — the most favourable choice for eSRRF.

Stress rows, where the confidence must fall: the same layout with dyes 10x dimmer than
trained (``dim``), and with dyes that do not blink at the same mean brightness (``static``,
real shot noise but no fluctuation). The confidence tracking is the Spearman rank
correlation of dl-srrf5's confidence with its SSIM over all its rows (held-out, ablation,
stress).
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Sequence
from typing import Any, cast, get_args

import numpy as np
from scipy import ndimage

from simulators.blinking import SwitchingDye
from simulators.fluctuation import FWHM_PER_SIGMA, Burst, histogram_points, simulate_burst
from simulators.fluctuation_fields import prior_free_emitters
from simulators.optics import blur, otf_2d
from srlive.learn.fluctuation import (
    FRAMES,
    HELD_OUT_PRIOR_FREE,
    HELD_OUT_SEED_BASE,
    HI_NM,
    TRAIN_PRIOR_FREE,
    sr_fwhm_nm,
)
from srlive.recon.fluctuation import esrrf_sensitivities
from srlive.recon.fluctuation.esrrf import Temporal
from srlive.recon.learned.geometry import CAMERA_NM, EMISSION_NM, NA
from srlive.recon.learned.infer import LearnedReconstructor
from srlive.recon.similarity import ssim
from srlive.recon.wiener_sim import fourier_upsample

EVAL_KINDS = (*TRAIN_PRIOR_FREE, *HELD_OUT_PRIOR_FREE)
OFFSET_ADU = 100.0
ESRRF_RADII = (1.0, 1.5, 2.0)
ESRRF_SENSITIVITIES = (1.0, 2.0)
ESRRF_TEMPORAL = ("AVG", "VAR")
TRUTH_FWHM = sr_fwhm_nm(factor=np.sqrt(2.0))  # the squared PSF's width, whatever the target
HALF_FWHM = sr_fwhm_nm(factor=2.0)  # a sharper truth: half the widefield FWHM


STRESS_DYES = {  # inputs unlike training, where the confidence must fall
    "dim": SwitchingDye(photons_per_ms_mw=0.15),  # 10x dimmer than the default dye
    # never switches: on all the time, at the default dye's mean brightness at 20 mW
    "static": SwitchingDye(
        k_off_dark_per_s=0.0,
        off_per_mw_s=0.0,
        bleach_per_mw_s=0.0,
        photons_per_ms_mw=1.5 * SwitchingDye().on_fraction(20.0),
    ),
}


def held_out_burst(
    kind: str,
    size: int,
    index: int,
    frames: int = 100,
    power_mw: float = 20.0,
    dye: SwitchingDye | None = None,
) -> Burst:
    """One held-out burst: a prior-free layout (seed from the held-out range) imaged."""
    seed = HELD_OUT_SEED_BASE + zlib.crc32(f"{kind}/{size}/{index}".encode()) % 10_000_000
    emitters = prior_free_emitters(kind, (size * CAMERA_NM, size * CAMERA_NM), seed)
    return simulate_burst(emitters, frames, power_mw, rng=np.random.default_rng(seed), dye=dye)


def to_hi_grid(image: np.ndarray) -> np.ndarray:
    """Register a Fourier-upsampled camera-grid image onto the 2x grid (half-pixel shift)."""
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


def truths(burst: Burst) -> dict[str, np.ndarray]:
    """The burst's dyes blurred to widefield FWHM / √2 (``""``) and to half the widefield
    FWHM (``@half``)."""
    return {"": burst.truth_image(HI_NM, TRUTH_FWHM), "@half": burst.truth_image(HI_NM, HALF_FWHM)}


def esrrf_images(frames: np.ndarray, sets: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """eSRRF (m = 2, macro-pixel correction) of ``frames`` per parameter set (None: sweep)."""
    if sets is None:
        sets = [f"r={r:g},s={s:g},{t}" for r, s, t in esrrf_grid()]
    out = {}
    for radius, temporal in dict.fromkeys(_parse(name)[::2] for name in sets):
        wanted = [s for r, s, t in map(_parse, sets) if (r, t) == (radius, temporal)]
        images = esrrf_sensitivities(frames, 2, radius, tuple(wanted), temporal, True, OFFSET_ADU)
        for s, image in zip(wanted, images, strict=True):
            out[f"r={radius:g},s={s:g},{temporal}"] = image
    return out


def noise_free_widefield(burst: Burst) -> np.ndarray:
    """The dyes' time-averaged image through the optics, without noise, on the 2x grid: the
    best any processing without fluctuations can show."""
    dyes = burst.truth_image(HI_NM).astype(np.float32)
    return blur(dyes, otf_2d(dyes.shape, HI_NM, NA, EMISSION_NM))


def ideal_five(burst: Burst) -> dict[str, np.ndarray]:
    """A perfect 5-frame reconstruction: the dyes with their photons over the first 5 frames
    (dyes that stayed dark absent), blurred as each truth; what no 5-frame method can beat
    but by luck, since the truth averages 100 frames."""
    photons = burst.emitter_photons * burst.on_fraction[:FRAMES].mean(axis=0)
    dyes = histogram_points(
        burst.emitter_positions_nm, photons, burst.truth_image(HI_NM).shape, HI_NM
    )
    fwhm = {"": TRUTH_FWHM, "@half": HALF_FWHM}
    return {k: ndimage.gaussian_filter(dyes, v / FWHM_PER_SIGMA / HI_NM) for k, v in fwhm.items()}


def contrast(image: np.ndarray, frames: np.ndarray) -> float:
    """How much structure an output shows, in its own units, whatever the affine fit that
    SSIM applies makes of it: its spatial standard deviation over that of the widefield mean
    of ``frames`` (borders as SSIM's ignored). A faint residual scores low here and may
    still score well by SSIM, which rescales it."""
    margin = image.shape[0] // 16
    inner = (slice(margin, -margin), slice(margin, -margin))
    return float(np.std(image[inner]) / max(float(np.std(widefield(frames)[inner])), 1e-9))


def field_scores(
    model: LearnedReconstructor, burst: Burst, esrrf_sets: Sequence[str] | None = None
) -> dict[str, float]:
    """SSIM of every method on one burst against both truths (``esrrf_sets``: None = the
    whole sweep), and the model's confidence on the frames and on the ablation."""
    first = burst.frames[:FRAMES]
    mean = first.astype(np.float32).mean(axis=0)
    result = model(first)
    ablated = model(np.repeat(mean[None], FRAMES, axis=0))
    images = {
        "dl-srrf5": result.image,
        "dl-srrf5 (5 x mean)": ablated.image,
        "widefield (5)": widefield(first),
        "widefield (100)": widefield(burst.frames),
        "widefield (noise-free)": noise_free_widefield(burst),
    }
    esrrf = esrrf_images(burst.frames, esrrf_sets)
    row_truths = truths(burst)
    ideal = ideal_five(burst)
    images.update({f"esrrf-100 {k}": v for k, v in esrrf.items()})
    row = {
        "confidence": result.confidence,
        "confidence (5 x mean)": ablated.confidence,
        "contrast": contrast(result.image, first),
        "contrast (5 x mean)": contrast(ablated.image, first),
    }
    for suffix, truth in row_truths.items():
        row.update({f"{name}{suffix}": score_ssim(image, truth) for name, image in images.items()})
        row[f"ideal (5){suffix}"] = score_ssim(ideal[suffix], truth)
    return row


def stress_scores(model: LearnedReconstructor, kind: str, size: int, index: int) -> list[dict]:
    """dl-srrf5's SSIM and confidence on the stress inputs (``STRESS_DYES``) of one layout."""
    rows = []
    for name, dye in STRESS_DYES.items():
        burst = held_out_burst(kind, size, index, frames=FRAMES, dye=dye)
        result = model(burst.frames)
        truth = truths(burst)[""]
        rows.append(
            {
                "kind": kind,
                "stress": name,
                "dl-srrf5": score_ssim(result.image, truth),
                "confidence": result.confidence,
                "contrast": contrast(result.image, burst.frames),
            }
        )
    return rows


STRESS_KEYS = ("dl-srrf5", "confidence", "contrast")


def confidence_tracking(rows: list[dict[str, Any]], stress: list[dict[str, Any]]) -> dict:
    """Spearman rank correlation of dl-srrf5's confidence with its SSIM over its held-out,
    ablation and stress rows (1: the confidence orders the errors exactly)."""
    from scipy.stats import spearmanr

    pairs = [(r["confidence"], r["dl-srrf5"]) for r in rows + stress]
    pairs += [(r["confidence (5 x mean)"], r["dl-srrf5 (5 x mean)"]) for r in rows]
    conf, quality = zip(*pairs, strict=True)
    rho = float(spearmanr(conf, quality).statistic)
    by = {}
    for name in STRESS_DYES:
        mine = [r for r in stress if r["stress"] == name]
        by[name] = {k: round(float(np.median([r[k] for r in mine])), 4) for k in STRESS_KEYS}
    return {"rows": len(pairs), "spearman_confidence_vs_ssim": round(rho, 3), "stress": by}


def _parse(name: str) -> tuple[float, float, Temporal]:
    r, s, temporal = name.split(",")
    if temporal not in get_args(Temporal):
        raise ValueError(f"{name}: no eSRRF temporal mode {temporal!r}")
    return float(r.split("=")[1]), float(s.split("=")[1]), cast(Temporal, temporal)


def gains(row: dict[str, float], suffix: str = "") -> dict[str, float]:
    """What dl-srrf5 adds over the 5-frame widefield and what share the ablation keeps
    (against the truth of ``suffix``: ``""`` or ``"@half"``)."""
    added = row[f"dl-srrf5{suffix}"] - row[f"widefield (5){suffix}"]
    kept = row[f"dl-srrf5 (5 x mean){suffix}"] - row[f"widefield (5){suffix}"]
    share = kept / added if added > 0 else np.nan
    return {f"added{suffix}": added, f"kept{suffix}": kept, f"kept_share{suffix}": share}


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
    rows, stress = [], []
    jobs = [(k, i) for k in kinds for i in range(fields_per_kind)]
    for kind, i in tqdm(jobs, desc="evaluate dl-srrf5", disable=not progress):
        rows.append({"kind": kind, **field_scores(model, held_out_burst(kind, size, i))})
        stress += stress_scores(model, kind, size, i)
    best = {}
    for suffix in ("", "@half"):  # eSRRF's best parameters against each truth
        sweep = [k for k in rows[0] if k.startswith("esrrf-100 ") and k.endswith(suffix)]
        sweep = [k for k in sweep if suffix or not k.endswith("@half")]
        best[suffix] = max(sweep, key=lambda k: float(np.median([r[k] for r in rows])))
        for r in rows:
            r[f"esrrf-100{suffix}"] = r[best[suffix]]

    def medians(subset: list[dict[str, Any]]) -> dict[str, float]:
        keys = [k for k in subset[0] if k != "kind"]
        out = {k: round(float(np.median([r[k] for r in subset])), 4) for k in keys}
        for suffix in ("", "@half"):
            out.update({k: round(float(v), 4) for k, v in gains(out, suffix).items()})
        return out

    return {
        "size": size,
        "fields": len(rows),
        "fields_per_kind": fields_per_kind,
        "kinds": list(kinds),
        "held_out_generators": list(HELD_OUT_PRIOR_FREE),
        "truth": f"100-frame time-averaged dyes blurred to FWHM {TRUTH_FWHM:.1f} nm (widefield "
        "FWHM / sqrt 2, the squared PSF's width), 2x grid",
        "truth_half": f"the same dyes blurred to FWHM {HALF_FWHM:.1f} nm (half the widefield FWHM)",
        "burst": "simulate_burst defaults: SwitchingDye, 20 mW, 10 ms, NA 1.49, 510 nm, 65 nm",
        "esrrf_best": best[""].removeprefix("esrrf-100 "),
        "esrrf_best_half": best["@half"].removeprefix("esrrf-100 ").removesuffix("@half"),
        "overall": medians(rows),
        "by_kind": {k: medians([r for r in rows if r["kind"] == k]) for k in kinds},
        "confidence_tracking": confidence_tracking(rows, stress),
        "wall_s": round(time.perf_counter() - start, 1),
    }


VALIDATION_INDEX = 1000  # fields for choosing the target's width: not the card's or the tests'


def target_width_scan(
    factors: Sequence[float], size: int = 96, fields_per_kind: int = 3
) -> dict[str, Any]:
    """Median SSIM against the truth of a perfect 5-frame image blurred to widefield FWHM /
    each factor, and of eSRRF-100 (r=1, s=1, AVG), on validation fields (indices from
    ``VALIDATION_INDEX``): which target width the 5 frames support best."""
    rows = []
    for kind in EVAL_KINDS:
        for index in range(VALIDATION_INDEX, VALIDATION_INDEX + fields_per_kind):
            burst = held_out_burst(kind, size, index)
            truth = truths(burst)[""]
            photons = burst.emitter_photons * burst.on_fraction[:FRAMES].mean(axis=0)
            dyes = histogram_points(burst.emitter_positions_nm, photons, truth.shape, HI_NM)
            row = {}
            for f in factors:
                sigma = sr_fwhm_nm(factor=f) / FWHM_PER_SIGMA / HI_NM
                row[f"{f:.3g}"] = score_ssim(ndimage.gaussian_filter(dyes, sigma), truth)
            image = esrrf_images(burst.frames, ["r=1,s=1,AVG"])["r=1,s=1,AVG"]
            rows.append({**row, "esrrf-100 r=1,s=1,AVG": score_ssim(image, truth)})
    return {
        "size": size,
        "fields": len(rows),
        "validation_index": VALIDATION_INDEX,
        "median_ssim": {k: round(float(np.median([r[k] for r in rows])), 4) for k in rows[0]},
    }
