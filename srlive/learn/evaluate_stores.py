"""``srlive evaluate --stores``: score reconstructions on many acquisitions, on Dask.

Real acquisitions have no ground truth; the reference is the classical ``wiener-sim`` of the
full 9-frame set. Every method (and the reference) reconstructs every store through
:func:`srlive.recon.distributed.reconstruct_distributed` (resumable outputs under ``out``,
reused when complete), then each set is scored against the reference: SSIM after a linear
fit (as the simulated evaluation does) and the method's own confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srlive.recon.similarity import ssim
from srlive.storage.omezarr import open_store

REFERENCE = "wiener-sim"


def _reconstruct(
    method: str, stores: Sequence[Path], out: Path, workers: int | None, scheduler: str | None
) -> list[Path]:
    """``method`` over every store in one Dask job; outputs already complete are reused."""
    from srlive.recon.distributed import (
        named_outputs,
        reconstruct_distributed,
        reconstruction_state,
    )

    target = out / method.replace("/", "_").removesuffix(".safetensors")
    outputs = named_outputs(stores, target)
    pairs = zip(stores, outputs, strict=True)
    todo = [(s, o) for s, o in pairs if reconstruction_state(o, s, method) != "complete"]
    if todo:
        target.mkdir(parents=True, exist_ok=True)
        inputs = [s for s, _ in todo]
        dest = todo[0][1] if len(todo) == 1 else target
        reconstruct_distributed(inputs, method, dest, workers=workers, scheduler=scheduler)
    return outputs


def _score_store(method_out: Path, reference_out: Path) -> dict[str, Any]:
    """Per-set SSIM against the reference and the method's confidence, as medians."""
    method, reference = open_store(method_out), open_store(reference_out)
    if reference.sr is None:
        raise ValueError(f"{reference_out}: the reference store has no SR images")
    if method.sr is None or method.sr.shape[1:] != reference.sr.shape[1:]:
        return {"comparable": False, "why": "its output is not on the SR grid of wiener-sim"}
    scores, confidence = [], []
    conf_by_t = dict(zip(method.sr_table["t"], method.sr_table.get("confidence", []), strict=False))
    for t, status in sorted(method.sr_status().items()):
        if status != "reconstructed" or reference.sr_status().get(t) != "reconstructed":
            continue
        scores.append(ssim(method.read_sr(t), reference.read_sr(t)))
        confidence.append(float(conf_by_t.get(t, np.nan)))
    conf = np.asarray(confidence, float)
    return {
        "comparable": True,
        "sets": len(scores),
        "ssim_vs_wiener_median": round(float(np.median(scores)), 4) if scores else None,
        "ssim_vs_wiener_min": round(float(np.min(scores)), 4) if scores else None,
        "confidence_median": round(float(np.nanmedian(conf)), 4)
        if np.isfinite(conf).any()
        else None,
    }


def _is_burst_model(method: str) -> bool:
    """A shipped fluctuation model (dl-srrf5): it takes bursts, not the stores' SIM sets."""
    from srlive.recon.learned.tasks import TASKS

    task = TASKS.get(str(method))
    return task is not None and task.fluctuation


def evaluate_stores(
    stores: Sequence[str | Path],
    methods: Sequence[str],
    out: str | Path,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Score ``methods`` on every store against ``wiener-sim`` (see the module docstring)."""
    paths = [Path(s) for s in stores]
    if not paths:
        raise ValueError("give at least one store to evaluate on")
    out = Path(out)
    reference = _reconstruct(REFERENCE, paths, out, workers, scheduler)
    results: dict[str, Any] = {}
    for method in methods:
        if method == REFERENCE or _is_burst_model(method):
            continue
        outputs = _reconstruct(method, paths, out, workers, scheduler)
        results[method] = {
            str(store): _score_store(o, r)
            for store, o, r in zip(paths, outputs, reference, strict=True)
        }
    return {
        "reference": REFERENCE,
        "stores": [str(p) for p in paths],
        "outputs": str(out),
        "cluster": scheduler or f"LocalCluster({workers or 1} processes)",
        "methods": results,
    }
