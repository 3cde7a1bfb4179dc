"""Scoring localisations against ground truth, as the SMLM challenge does.

In each frame, found and true emitters are paired one to one by the Hungarian algorithm on
their lateral distances (scipy's ``linear_sum_assignment``), pairs farther apart than the
matching radius (50 nm by default, the challenge's) left unpaired. Paired: true positives;
found but unpaired: false positives; true but unpaired: false negatives. Jaccard index
``TP / (TP + FP + FN)``; RMSE over the pairs (lateral: ``sqrt(mean(dx² + dy²))``, and per
axis). The bias (mean dx, dy) is reported too, since an offset hides in an RMSE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

MATCH_RADIUS_NM = 50.0
_FAR = 1e12


@dataclass(frozen=True)
class MatchScore:
    """How found localisations compare with the truth."""

    true_positives: int
    false_positives: int
    false_negatives: int
    jaccard: float
    recall: float
    precision: float
    rmse_lateral_nm: float
    rmse_x_nm: float
    rmse_y_nm: float
    rmse_z_nm: float
    bias_x_nm: float
    bias_y_nm: float
    radius_nm: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _frame_groups(frame: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices by frame."""
    if len(frame) == 0:
        return {}
    order = np.argsort(frame, kind="stable")
    values, starts = np.unique(frame[order], return_index=True)
    return dict(zip(values.tolist(), np.split(order, starts[1:]), strict=True))


def match_pairs(
    found: dict[str, np.ndarray], truth: dict[str, np.ndarray], radius_nm: float = MATCH_RADIUS_NM
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into found, into truth) of the pairs within ``radius_nm`` in the same frame."""
    f_groups, t_groups = (
        _frame_groups(np.asarray(found["frame"])),
        _frame_groups(np.asarray(truth["frame"])),
    )
    fi, ti = [], []
    for frame, f_idx in f_groups.items():
        t_idx = t_groups.get(frame)
        if t_idx is None:
            continue
        dx = found["x_nm"][f_idx][:, None] - truth["x_nm"][t_idx][None, :]
        dy = found["y_nm"][f_idx][:, None] - truth["y_nm"][t_idx][None, :]
        dist = np.hypot(dx, dy)
        cost = np.where(dist <= radius_nm, dist, _FAR)
        rows, cols = linear_sum_assignment(cost)
        good = cost[rows, cols] < _FAR
        fi.append(f_idx[rows[good]])
        ti.append(t_idx[cols[good]])
    if not fi:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(fi), np.concatenate(ti)


def score(
    found: dict[str, np.ndarray], truth: dict[str, np.ndarray], radius_nm: float = MATCH_RADIUS_NM
) -> MatchScore:
    """Jaccard index and RMSE of ``found`` against ``truth`` (columns frame, x_nm, y_nm, z_nm)."""
    fi, ti = match_pairs(found, truth, radius_nm)
    tp = len(fi)
    fp = len(found["frame"]) - tp
    fn = len(truth["frame"]) - tp
    dx = found["x_nm"][fi] - truth["x_nm"][ti]
    dy = found["y_nm"][fi] - truth["y_nm"][ti]

    def rms(v: np.ndarray) -> float:
        return float(np.sqrt(np.mean(v**2))) if len(v) else float("nan")

    dz = np.zeros(0)
    if "z_nm" in found and "z_nm" in truth:
        dz = found["z_nm"][fi] - truth["z_nm"][ti]
        dz = dz[np.isfinite(dz)]
    total = tp + fp + fn
    return MatchScore(
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
        jaccard=tp / total if total else float("nan"),
        recall=tp / (tp + fn) if tp + fn else float("nan"),
        precision=tp / (tp + fp) if tp + fp else float("nan"),
        rmse_lateral_nm=rms(np.hypot(dx, dy)),
        rmse_x_nm=rms(dx),
        rmse_y_nm=rms(dy),
        rmse_z_nm=rms(dz),
        bias_x_nm=float(np.mean(dx)) if tp else float("nan"),
        bias_y_nm=float(np.mean(dy)) if tp else float("nan"),
        radius_nm=radius_nm,
    )
