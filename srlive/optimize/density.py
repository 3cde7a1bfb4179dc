"""SMLM emitter-density control: the activation power that holds a target density.

Photoswitching dyes return to the on state thermally and, faster, under the activation
line (405 nm), at a rate linear in its power; the density of emitters seen per frame is
about proportional to the surviving dyes times that rate. As dyes bleach the density falls,
so the activation must rise. :func:`next_activation` is one step of an integral controller
in log space: the power is multiplied by ``(target / measured) ** gain`` (steps bounded
to a factor :data:`MAX_STEP` either way), kept within ``[0, limit]``; a power of 0 restarts
from :data:`RESTART_FRACTION` of the limit. With one set of delay between a measurement and
its effect (the next set is already being taken) the loop gain is the gain times the
density's elasticity to the power (below 1: the thermal return does not scale with it); the
default 0.8 settled within three sets of 100 frames on the simulated dye with little overshoot.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

MAX_STEP = 4.0  # the most one set may change the power (x or /)
RESTART_FRACTION = 0.01  # of the limit: where the power restarts from 0


class DensityTarget(BaseModel):
    """What the density control holds: localisations per frame per µm², and how briskly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_um2: float = Field(gt=0, le=100, description="localisations per frame per µm²")
    gain: float = Field(0.8, gt=0, le=1, description="log-space gain per set")


def next_activation(
    current_mw: float, measured_per_um2: float, target: DensityTarget, limit_mw: float
) -> float:
    """The activation power for the next set (mW, within ``[0, limit_mw]``).

    ``measured_per_um2`` is the density of the latest set (NaN: unknown, nothing changes).
    """
    if not math.isfinite(measured_per_um2) or limit_mw <= 0:
        return min(max(current_mw, 0.0), max(limit_mw, 0.0))
    current = current_mw if current_mw > 0 else RESTART_FRACTION * limit_mw
    if measured_per_um2 <= 0:
        factor = MAX_STEP
    else:
        factor = (target.per_um2 / measured_per_um2) ** target.gain
    factor = min(max(factor, 1.0 / MAX_STEP), MAX_STEP)
    return min(max(current * factor, 0.0), limit_mw)
