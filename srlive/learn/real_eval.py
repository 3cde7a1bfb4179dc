"""Learned models on real raw SIM data from another lab's microscope, against its authors' SIM.

``../shared/data/real-sim/tsim-er/ER_1.tif`` (three 9-frame sets of live ER, 65 nm pixels,
NA 1.49, 510 nm; fringe period ≈ 2.69 camera pixels, offset ≈ 60 ADU) with the dataset
authors' SIM image; agreement by the project's metric ``../shared/tools/compare_to_reference.py``
(Pearson correlation after registration, whole image and high-pass band). Rows: the widefield
mean, srlive's blind Wiener SIM, and each learned model with its confidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srlive.io.real_sim import (
    DEFAULT_REAL_INPUT,
    RealOptics,
    default_reference,
    load_agreement,
    load_reference,
)
from srlive.recon.learned.geometry import Geometry
from srlive.recon.learned.infer import LearnedReconstructor
from srlive.recon.wiener_sim import WienerSIM, fourier_upsample

REAL_PERIOD_PX = 2.69  # measured on this data (see its README)


def _model_frames(model: LearnedReconstructor, raw: np.ndarray) -> np.ndarray:
    if model.frames_per_set == 9:
        return raw
    if model.frames_per_set == 3:
        return raw[[0, 3, 6]]
    return raw.mean(axis=0, keepdims=True)


def real_data_agreement(
    models: dict[str, LearnedReconstructor], raw_path: Path = DEFAULT_REAL_INPUT
) -> dict[str, Any] | None:
    """Agreement per time point (full, high-pass) of every method; None without the data."""
    import tifffile

    reference = default_reference(raw_path)
    if not raw_path.is_file() or not reference.is_file():
        return None
    optics = RealOptics()
    stack = np.asarray(tifffile.imread(raw_path), np.float32)
    sets = stack.reshape(-1, 9, *stack.shape[-2:])
    h, w = sets.shape[-2:]
    ref = load_reference(reference, (2 * h, 2 * w))
    agreement = load_agreement()
    geometry = Geometry(
        optics.pixel_nm, optics.na, optics.emission_nm, REAL_PERIOD_PX * optics.pixel_nm
    )
    names = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    used = {
        name: LearnedReconstructor(
            m.path, m.device.type, optics.offset_adu, names[m.precision_name], geometry
        )
        for name, m in models.items()
    }
    rows: dict[str, list[dict[str, float]]] = {}

    def add(name: str, image: np.ndarray, **extra: float) -> None:
        a = agreement(np.asarray(image, np.float64), ref)
        entry = {"full": round(a["full"], 4), "highpass": round(a["highpass"], 4), **extra}
        rows.setdefault(name, []).append(entry)

    for raw in sets:
        add("widefield", fourier_upsample(raw.mean(axis=0) - np.float32(optics.offset_adu)))
        wiener = WienerSIM(
            (h, w), optics.pixel_nm, optics.na, optics.emission_nm, offset_adu=optics.offset_adu
        )
        wiener.calibrate(raw)
        add("wiener-sim9", wiener.reconstruct(raw))
        for name, model in used.items():
            result = model(_model_frames(model, raw))
            add(name, result.image, confidence=round(result.confidence, 3))
    return {
        "data": str(raw_path.name),
        "reference": str(reference.name),
        "optics": {
            "pixel_nm": optics.pixel_nm,
            "na": optics.na,
            "emission_nm": optics.emission_nm,
            "offset_adu": optics.offset_adu,
            "period_nm": round(REAL_PERIOD_PX * optics.pixel_nm, 1),
        },
        "per_time_point": rows,
    }
