"""What the optimizer may choose from (within the profile's hard limits), and what it saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_POWERS = 96
N_EXPOSURES = 9
STEADY_PER_OCTAVE = 0.15  # dose-equivalent cost of moving the exposure from the protocol's


class OptimizerError(ValueError):
    """Bad optimizer settings (goal, limits)."""


@dataclass(frozen=True)
class SearchSpace:
    """What the optimizer may choose from: always inside the profile's hard limits."""

    line: int
    min_power_mw: float
    max_power_mw: float
    min_exposure_ms: float
    max_exposure_ms: float
    reference_exposure_ms: float
    frames: dict[str, int]  # modality -> frames per set
    readout_ms: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_power_mw <= self.max_power_mw:
            raise OptimizerError(
                f"power range {self.min_power_mw:g}–{self.max_power_mw:g} mW is empty"
            )
        if not 0 < self.min_exposure_ms <= self.max_exposure_ms:
            raise OptimizerError(
                f"exposure range {self.min_exposure_ms:g}–{self.max_exposure_ms:g} ms is empty"
            )
        if not self.frames:
            raise OptimizerError("no modality to choose from")

    def contains(self, power_mw: float, exposure_ms: float, modality: str) -> bool:
        tol = 1e-9
        return (
            modality in self.frames
            and self.min_power_mw - tol <= power_mw <= self.max_power_mw + tol
            and self.min_exposure_ms - tol <= exposure_ms <= self.max_exposure_ms + tol
        )

    def candidates(self) -> dict[str, np.ndarray]:
        """Grid of (power, exposure, modality index) within the limits (log-spaced)."""
        powers = np.geomspace(self.min_power_mw, self.max_power_mw, N_POWERS)
        exposures = np.unique(
            np.concatenate(
                [
                    np.geomspace(self.min_exposure_ms, self.max_exposure_ms, N_EXPOSURES),
                    [
                        np.clip(
                            self.reference_exposure_ms, self.min_exposure_ms, self.max_exposure_ms
                        )
                    ],
                ]
            )
        )
        names = list(self.frames)
        p, e, m = np.meshgrid(powers, exposures, np.arange(len(names)), indexing="ij")
        p, e, m = p.ravel(), e.ravel(), m.ravel()
        n_frames = np.array([self.frames[names[i]] for i in m], np.float64)
        dose = p * e * n_frames / 1000.0
        # ties on dose go to the protocol's exposure: equal dose, steadier settings
        off_reference = np.abs(np.log2(e / self.reference_exposure_ms))
        return {
            "power": p,
            "exposure": e,
            "modality": m,
            "dose": dose,
            "cost": dose * (1.0 + STEADY_PER_OCTAVE * off_reference),
            "duration_ms": n_frames * (e + self.readout_ms),
        }

    @property
    def modalities(self) -> list[str]:
        return list(self.frames)


@dataclass
class Observation:
    """One acquired set as the optimizer saw it."""

    t: int
    power_mw: float
    exposure_ms: float
    modality: str
    dose_before_mj: float
    metrics: dict[str, Any]
    quality: float
