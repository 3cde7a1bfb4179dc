"""Evaluation on held-out simulated data against ground truth, with classical baselines.

Fields use sample seeds outside the training streams, pattern orientations of their own,
and include a structure type never used in training (ER). Light levels are fractions of the
default acquisition (20 mW × 10 ms with the simulator's default brightness). Every method
is scored after an affine intensity fit to its target (normalised PSNR and SSIM) and by its
FRC resolution against the target (1/7 threshold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from simulators.camera_model import CameraModel
from simulators.illumination import IlluminationPattern
from simulators.imaging import FringeCache, expected_from_cache
from simulators.optics import blur, otf_2d
from simulators.samples import make_sample
from srlive.learn.data import (
    EMISSION_NM,
    HELD_OUT_STRUCTURES,
    HI_NM,
    NA,
    PERIOD_NM,
    sim_target_otf,
)
from srlive.recon.metrics import psnr, ssim
from srlive.recon.resolution import frc_resolution_nm
from srlive.recon.wiener_sim import WienerSIM, fourier_upsample

DEFAULT_SCALE = 20.0 * 10.0 * 20.0  # photons per unit density per camera pixel at 100 %
EVAL_STRUCTURES = ("microtubules", "vesicles", "mitochondria", *HELD_OUT_STRUCTURES)
EVAL_SEED_BASE = 900_000_000  # far from every training stream


@dataclass
class Field:
    """One held-out field: raw data at several light levels and its targets."""

    kind: str
    sr_target: np.ndarray
    wf_target: np.ndarray
    sim9: dict[float, np.ndarray]  # light fraction -> (9, H, W) ADU
    widefield: dict[float, np.ndarray]  # light fraction -> (H, W) ADU


def _patterns(rng: np.random.Generator) -> list[IlluminationPattern]:
    offset = rng.uniform(0, np.pi)
    patterns = []
    for a in range(3):
        angle = offset + a * np.pi / 3
        k = (np.sin(angle) / PERIOD_NM, np.cos(angle) / PERIOD_NM)
        for p in range(3):
            patterns.append(IlluminationPattern(((k[0], k[1], 0.8, 2 * np.pi * p / 3 + a),), 1.0))
    return patterns


def make_field(
    kind: str, size: int, seed: int, fractions: Sequence[float], camera: CameraModel = CameraModel()
) -> Field:
    rng = np.random.default_rng(EVAL_SEED_BASE + seed)
    hi = (2 * size, 2 * size)
    density = make_sample(kind, hi, HI_NM, seed=EVAL_SEED_BASE + seed, motion=False).density()
    otf = otf_2d(hi, HI_NM, NA, EMISSION_NM)
    cache = FringeCache(density, otf, 2, HI_NM)
    patterns = _patterns(rng)
    adu = camera.qe / camera.e_per_adu
    sim9, widefield = {}, {}
    for f in fractions:
        scale = DEFAULT_SCALE * f
        sim9[f] = np.stack(
            [camera.expose(expected_from_cache(cache, p, scale), 10.0, rng) for p in patterns]
        )
        widefield[f] = camera.expose(cache.base * np.float32(scale), 10.0, rng)
    sr_target = blur(density, sim_target_otf(hi)) * np.float32(DEFAULT_SCALE * adu)
    wf_target = cache.base * np.float32(DEFAULT_SCALE * adu)
    return Field(kind, sr_target, wf_target, sim9, widefield)


def to_hi_grid(image: np.ndarray) -> np.ndarray:
    """Register a Fourier-upsampled camera-grid image onto the simulation's 2× grid.

    A camera pixel's centre lies half a fine pixel from the fine grid's pixel 2k.
    """
    spectrum = ndimage.fourier_shift(np.fft.fft2(image), (0.5, 0.5))
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def score(output: np.ndarray, target: np.ndarray, pixel_nm: float) -> dict[str, float]:
    margin = output.shape[0] // 16  # ignore borders (edge tapering, padding)
    o = output[margin:-margin, margin:-margin]
    t = target[margin:-margin, margin:-margin]
    return {
        "psnr": psnr(o, t),
        "ssim": ssim(o, t),
        "resolution_nm": frc_resolution_nm(o, t, pixel_nm),
    }


def evaluate(
    models: dict[str, Callable[[np.ndarray], Any]] | None = None,
    size: int = 128,
    fields_per_structure: int = 2,
    structures: Sequence[str] = EVAL_STRUCTURES,
) -> dict[str, Any]:
    """Score baselines and learned models on held-out fields; JSON-ready summary."""
    models = models or {}
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for kind in structures:
        for i in range(fields_per_structure):
            field = make_field(
                kind, size, seed=hash((kind, i)) % 100_000, fractions=(1.0, 0.1, 0.05)
            )
            rows.extend(_score_field(field, models, size))
    summary: dict[str, Any] = {
        "size": size,
        "fields": len(structures) * fields_per_structure,
        "held_out_structures": list(HELD_OUT_STRUCTURES),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    table: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        group = "held-out" if row["kind"] in HELD_OUT_STRUCTURES else "trained"
        entry = table.setdefault(row["method"], {}).setdefault(group, {})
        for key, value in row.items():
            if key in ("method", "kind"):
                continue
            entry.setdefault(key, []).append(value)
    summary["results"] = {
        method: {
            group: {k: round(float(np.nanmedian(v)), 4) for k, v in metrics.items()}
            for group, metrics in groups.items()
        }
        for method, groups in table.items()
    }
    summary["aggregate"] = "median over fields (FRC against sparse targets can fail on one field)"
    return summary


def _score_field(
    field: Field, models: dict[str, Callable[[np.ndarray], Any]], size: int
) -> list[dict[str, Any]]:
    rows = []

    def add(
        method: str, output: np.ndarray, target: np.ndarray, pixel_nm: float, **extra: float
    ) -> None:
        rows.append(
            {"method": method, "kind": field.kind, **score(output, target, pixel_nm), **extra}
        )

    add(
        "widefield@100%",
        to_hi_grid(fourier_upsample(field.widefield[1.0].astype(np.float32) - 100)),
        field.sr_target,
        HI_NM,
    )
    add(
        "raw-widefield@100% (vs widefield truth)",
        field.widefield[1.0].astype(np.float32),
        field.wf_target,
        2 * HI_NM,
    )
    for f, label in ((1.0, "100%"), (0.1, "10%")):
        wiener = WienerSIM((size, size), 2 * HI_NM, NA, EMISSION_NM)
        wiener.calibrate(field.sim9[f])
        add(
            f"wiener-sim9@{label}",
            to_hi_grid(wiener.reconstruct(field.sim9[f])),
            field.sr_target,
            HI_NM,
        )
    inputs = {
        "dl-sim3": (field.sim9[0.1][[0, 3, 6]], field.sr_target, "10%"),
        "dl-sim9": (field.sim9[0.1], field.sr_target, "10%"),
        "dl-denoise": (field.widefield[0.05][None], field.wf_target, "5%"),
        "dl-wf2sr": (field.widefield[1.0][None], field.sr_target, "100%"),
    }
    for name, model in models.items():
        frames, target, label = inputs[name]
        result = model(frames)
        pixel = HI_NM if target.shape[0] == 2 * size else 2 * HI_NM
        add(f"{name}@{label}", result.image, target, pixel, confidence=result.confidence)
    return rows
