"""How each goal picks one setting among the candidates the optimizer sampled (pure)."""

from __future__ import annotations

import numpy as np

DEFAULT_TARGET_QUALITY = 0.75


def choose(
    grid: dict[str, np.ndarray],
    goal: str,
    target_quality: float | None,
    idx: np.ndarray,
    quality: np.ndarray,
    per_timepoint: float | None,
    pace_cap: float | None = None,
) -> tuple[int, str]:
    """The candidate ``goal`` picks among ``idx`` of ``grid`` (sampled ``quality`` each): its
    position in ``idx`` and why. ``pace_cap`` is the dose the fluorescence reserve allows per
    timepoint; ``per_timepoint`` the share of the remaining budget (None: no budget)."""
    dose = grid["dose"][idx]
    paced = np.ones(len(idx), bool)
    if pace_cap is not None and (dose <= pace_cap + 1e-12).any():
        paced = dose <= pace_cap + 1e-12  # the dose the reserve allows every timepoint
    cost = grid["cost"][idx]
    target = float(target_quality or DEFAULT_TARGET_QUALITY)
    if goal == "quality-within-budget":
        best = quality[paced].max()
        near = np.nonzero(paced & (quality >= best - 0.01))[0]
        j = near[np.argmin(cost[near])]
        why = (
            "quality-within-budget: best sampled quality within the per-timepoint share "
            "of the remaining budget"
            if per_timepoint is not None
            else "quality-within-budget: best sampled quality (no budget), least dose"
        )
        return int(j), why
    ok = np.nonzero(quality >= target)[0]
    if ok.size == 0:  # hold what the reserve allows for the rest of the timelapse
        near = np.nonzero(paced & (quality >= quality[paced].max() - 0.02))[0]
        j = near[np.argmin(cost[near])]
        return int(j), (
            f"{goal}: target not reachable: least dose near the best quality"
            + ("" if paced.all() else " the fluorescence reserve allows per timepoint")
        )
    if goal == "max-rate-at-quality":
        duration = grid["duration_ms"][idx][ok]
        fastest = ok[duration <= duration.min() * 1.001]
        j = fastest[np.argmin(dose[fastest])]
        return int(j), "max-rate-at-quality: shortest set whose sampled quality reaches target"
    j = ok[np.argmin(cost[ok])]
    return int(j), "min-dose-at-quality: least dose whose sampled quality reaches target"
