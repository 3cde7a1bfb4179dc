"""Acquisition geometry a learned model depends on, and how far one is from its training.

Kept free of torch so acquisition code can describe an acquisition without loading models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the simulated microscope the shipped models are trained on (see srlive.learn.data)
CAMERA_NM = 65.0
NA = 1.49
EMISSION_NM = 510.0
PERIOD_NM = 195.0
# the fringe-period jitter (relative) models trained without a measured pattern were trained
# with: their tolerance to a period other than PERIOD_NM
PERIOD_JITTER = 0.02


@dataclass(frozen=True)
class Geometry:
    """How an acquisition samples the sample: what a model's input depends on."""

    pixel_nm: float = CAMERA_NM
    na: float = NA
    emission_nm: float = EMISSION_NM
    pattern_period_nm: float | None = PERIOD_NM

    @classmethod
    def from_profile(cls, profile: Any, line: int | None = None) -> Geometry:
        line = profile.defaults.laser_line if line is None else line
        return cls(
            profile.optics.pixel_nm,
            profile.optics.na,
            profile.optics.emission_for(line),
            profile.sim.period_nm.get(line),
        )

    @classmethod
    def from_optics(cls, optics: Any) -> Geometry:
        """The geometry of a :class:`~srlive.recon.optics.SIMOptics` (its nominal period)."""
        period = None if optics.nominal is None else optics.nominal.period_nm
        return cls(optics.pixel_nm, optics.na, optics.emission_nm, period)

    @property
    def psf_px(self) -> float:
        """Widefield resolution λ/(2NA) in camera pixels."""
        return self.emission_nm / (2 * self.na) / self.pixel_nm

    @property
    def period_px(self) -> float | None:
        return None if self.pattern_period_nm is None else self.pattern_period_nm / self.pixel_nm


def _outside(value: float, lo: float, hi: float) -> float:
    """Relative distance of ``value`` outside [lo, hi] (0 inside)."""
    return max(lo - value, value - hi, 0.0) / ((lo + hi) / 2)


def geometry_mismatch(task_patterned: bool, trained_jitter: float, geometry: Geometry) -> float:
    """Relative mismatch between an acquisition and the training geometry (0 = matches)."""
    mismatch = _outside(geometry.psf_px, *(Geometry().psf_px * f for f in (0.99, 1.01)))
    trained = Geometry().period_px
    if task_patterned and geometry.period_px is not None and trained is not None:
        lo, hi = trained * (1 - trained_jitter), trained * (1 + trained_jitter)
        mismatch = max(mismatch, _outside(geometry.period_px, lo, hi))
    return mismatch


def range_mismatch(
    geometry: Geometry, psf_px: tuple[float, float], frequency: tuple[float, float]
) -> float:
    """Relative distance of an acquisition outside a model's trained geometry ranges:
    λ/(2NA) in camera pixels and the fringe frequency as a fraction of 2NA/λ (0 inside)."""
    mismatch = _outside(geometry.psf_px, *psf_px)
    if geometry.pattern_period_nm is not None:
        freq = geometry.emission_nm / (2 * geometry.na) / geometry.pattern_period_nm
        mismatch = max(mismatch, _outside(freq, *frequency))
    return mismatch
