"""eSRRF parameter sweep scored by resolution and fidelity (the eSRRF paper's QnR).

For every (magnification, radius, sensitivity):

- resolution (``resolution="decorrelation"``, the default): image decorrelation analysis of
  the eSRRF image (:func:`srlive.recon.resolution.decorrelation_resolution_nm`, pixel
  ``pixel_nm / m``); ``"frc"``: Fourier ring correlation of the eSRRF images of the even and
  the odd frames (the paper's choice; twice the RGC work);
- fidelity: the resolution-scaled Pearson coefficient (RSP, Culley et al. 2018): the eSRRF
  image blurred by the Gaussian (sigma optimised) that best maps it back onto the widefield,
  binned to the camera grid, correlated with the widefield mean of the burst;
- QnR: the harmonic mean of RSP and the normalised resolution, a logistic that maps
  ``resolution_range_nm`` (best, worst) to (0.925, 0.075) — the scoring NanoPyx uses.

Sensitivities share one RGC per frame (:func:`esrrf_sensitivities`). Both resolution
measures read reproducible structure up to the fine grid's Nyquist limit as resolution: on
noise-free point emitters FRC gives 2 fine pixels for every set, and decorrelation peaks at
the grid's edge on the pixel-scale pattern of a high sensitivity or a small radius (26 nm
on a 13 nm grid for microtubules that eSRRF resolves at ~90 nm). A resolution within
``GRID_LIMIT_FRACTION`` of the grid limit (2 fine pixels) is therefore not a measurement:
the row is flagged ``at_grid_limit`` and scores no resolution (QnR 0, as an infinite one),
so the sweep picks among measured rows (by fidelity when none is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage, optimize

from srlive.recon.fluctuation.esrrf import Temporal, esrrf_sensitivities
from srlive.recon.resolution import decorrelation_resolution_nm, frc_resolution_nm

# decorrelation's peak (or FRC's crossing) beyond this fraction of the fine grid's Nyquist
# frequency is the grid's edge, not a resolution
GRID_LIMIT_FRACTION = 0.9


@dataclass(frozen=True)
class SweepRow:
    """One parameter set and its scores."""

    magnification: int
    radius: float
    sensitivity: float
    temporal: str
    resolution_nm: float
    fidelity: float
    qnr: float
    at_grid_limit: bool = False  # resolution_nm is the fine grid's limit, not a measurement

    @property
    def params(self) -> dict[str, float | int | str]:
        """Keyword arguments of :func:`esrrf` for this set."""
        return {
            "magnification": self.magnification,
            "radius": self.radius,
            "sensitivity": self.sensitivity,
            "temporal": self.temporal,
        }


@dataclass(frozen=True)
class SweepResult:
    """Every scored parameter set (in sweep order) and the one with the highest QnR."""

    rows: tuple[SweepRow, ...]
    best: SweepRow

    def table(self) -> list[dict[str, float | int | str]]:
        """The rows as plain dicts (for printing or JSON)."""
        return [asdict(row) for row in self.rows]


def normalised_resolution(resolution_nm: float, range_nm: tuple[float, float]) -> float:
    """Logistic score: range_nm[0] -> 0.925, range_nm[1] -> 0.075, midpoint -> 0.5."""
    if not np.isfinite(resolution_nm):
        return 0.0
    lo, hi = range_nm
    mid = 0.5 * (lo + hi)
    slope = 2 * np.log(0.925 / 0.075) / (hi - lo)
    return float(1.0 / (1.0 + np.exp(slope * (resolution_nm - mid))))


def rsp(sr_image: np.ndarray, widefield: np.ndarray, magnification: int) -> float:
    """Resolution-scaled Pearson coefficient of an SR image against the widefield image."""
    m = magnification
    h, w = widefield.shape
    sr = np.asarray(sr_image, np.float64)[: h * m, : w * m]
    margin = max(1, min(h, w) // 16)
    inner = (slice(margin, h - margin), slice(margin, w - margin))
    ref = np.asarray(widefield, np.float64)[inner].ravel()

    def corr(sigma_camera: float) -> float:
        blurred = ndimage.gaussian_filter(sr, sigma_camera * m, mode="nearest")
        binned = blurred.reshape(h, m, w, m).mean(axis=(1, 3))[inner].ravel()
        if binned.std() == 0 or ref.std() == 0:
            return 0.0
        return float(np.corrcoef(binned, ref)[0, 1])

    best = optimize.minimize_scalar(
        lambda s: -corr(s), bounds=(0.1, 4.0), method="bounded", options={"xatol": 0.02}
    )
    return max(corr(float(best.x)), corr(0.1))


def sweep_esrrf(
    burst: np.ndarray,
    magnifications: tuple[int, ...] = (5,),
    radii: tuple[float, ...] = (1.0, 1.5, 2.0),
    sensitivities: tuple[float, ...] = (1, 2, 4),
    temporal: Temporal = "AVG",
    pixel_nm: float = 100.0,
    offset_adu: float = 0.0,
    macro_pixel_correction: bool = True,
    resolution_range_nm: tuple[float, float] = (50.0, 200.0),
    resolution: Literal["decorrelation", "frc"] = "decorrelation",
) -> SweepResult:
    """Score every parameter combination (see the module docstring); ``pixel_nm``: camera pixel."""
    burst = np.asarray(burst)
    if not (magnifications and radii and sensitivities):
        raise ValueError("eSRRF sweep needs at least one magnification, radius and sensitivity")
    if not pixel_nm > 0:
        raise ValueError(f"eSRRF sweep pixel_nm must be positive, got {pixel_nm}")
    lo, hi = resolution_range_nm
    if not 0 < lo < hi:
        raise ValueError(f"eSRRF sweep resolution_range_nm must be (best, worst), got {lo, hi}")
    if burst.ndim != 3:
        raise ValueError(f"eSRRF sweep needs a (frames, height, width) burst, got {burst.shape}")
    if resolution not in ("decorrelation", "frc"):
        raise ValueError(
            f"eSRRF sweep resolution must be 'decorrelation' or 'frc', got {resolution!r}"
        )
    if resolution == "frc" and burst.shape[0] < 4:
        raise ValueError("eSRRF sweep with FRC needs at least 4 frames (even and odd halves)")
    widefield = burst.mean(axis=0, dtype=np.float64) - offset_adu
    rows = []
    for m in magnifications:
        for radius in radii:
            args = (m, radius, tuple(sensitivities), temporal, macro_pixel_correction, offset_adu)
            images = esrrf_sensitivities(burst, *args)
            if resolution == "frc":
                halves = zip(
                    esrrf_sensitivities(burst[0::2], *args),
                    esrrf_sensitivities(burst[1::2], *args),
                    strict=True,
                )
                res = [frc_resolution_nm(even, odd, pixel_nm / m) for even, odd in halves]
            else:
                res = [decorrelation_resolution_nm(image, pixel_nm / m) for image in images]
            limit_nm = 2 * pixel_nm / m / GRID_LIMIT_FRACTION
            for sensitivity, image, res_nm in zip(sensitivities, images, res, strict=True):
                fidelity = rsp(image, widefield, m)
                at_limit = bool(res_nm <= limit_nm)
                score = 0.0 if at_limit else normalised_resolution(res_nm, resolution_range_nm)
                f = max(fidelity, 0.0)
                qnr = 2 * f * score / (f + score) if f + score > 0 else 0.0
                rows.append(
                    SweepRow(
                        int(m),
                        float(radius),
                        float(sensitivity),
                        temporal,
                        float(res_nm),
                        fidelity,
                        float(qnr),
                        at_limit,
                    )
                )
    best = max(rows, key=lambda r: (r.qnr, r.fidelity))
    return SweepResult(tuple(rows), best)
