"""eSRRF parameters shared by the fluctuation benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from srlive.recon.fluctuation.esrrf import Temporal


@dataclass(frozen=True)
class EsrrfParams:
    """eSRRF parameters (defaults: the fixed ones of the eSRRF paper and NanoPyx)."""

    magnification: int = 5
    """fine pixels per camera pixel"""
    radius: float = 1.5
    """ring radius, camera pixels"""
    sensitivity: float = 1.0
    """exponent of the radial gradient convergence"""
    temporal: Temporal = "AVG"
    """temporal analysis: AVG, VAR or TAC2"""
