"""Signal and bleaching per set, from the raw frames (what the viewer plots and an optimizer
observes).

* ``signal``: mean ADU above the camera offset over the set;
* ``surviving_fraction``: the signal relative to the first set, at equal power × exposure
  (emission is linear in both, so a set taken at another power × exposure is scaled by the
  ratio); ``bleaching = 1 − surviving_fraction``;
* ``snr``: signal over the pixel noise of the last frame, estimated with Immerkær's
  Laplacian-difference operator (insensitive to smooth structure) on a central crop.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

NOISE_CROP = 256


def noise_sigma(frame: np.ndarray, crop: int = NOISE_CROP) -> float:
    """Immerkær (1996) estimate of additive pixel noise σ, on a central crop."""
    h, w = frame.shape[-2:]
    y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    x = np.asarray(frame[y0 : y0 + crop, x0 : x0 + crop], np.float32)
    if min(x.shape) < 3:
        return math.nan
    # the 3x3 mask [[1,-2,1],[-2,4,-2],[1,-2,1]] as sums of shifted slices
    c = x[1:-1, 1:-1]
    edge = x[:-2, 1:-1] + x[2:, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:]
    corner = x[:-2, :-2] + x[:-2, 2:] + x[2:, :-2] + x[2:, 2:]
    lap = corner - 2.0 * edge + 4.0 * c
    n = lap.size
    return float(math.sqrt(math.pi / 2.0) * np.abs(lap).sum(dtype=np.float64) / (6.0 * n))


class SignalTracker:
    """Turns each set into the signal / bleaching / SNR metrics (one instance per series)."""

    def __init__(self, offset_adu: float) -> None:
        self.offset_adu = float(offset_adu)
        self._reference: float | None = None  # signal per (mW·ms) of the first set
        self.confidence = math.nan  # latest SR confidence, carried into the metrics

    def update(
        self, t: int, time_s: float, frames: np.ndarray, power_mw: float, exposure_ms: float
    ) -> dict[str, Any]:
        """Metrics of one set of raw frames (n, H, W)."""
        signal = float(frames.mean(dtype=np.float64)) - self.offset_adu
        dose_rate = power_mw * exposure_ms
        surviving = math.nan
        if dose_rate > 0:
            per_dose = signal / dose_rate
            if self._reference is None and signal > 0:
                self._reference = per_dose
            if self._reference:
                surviving = per_dose / self._reference
        sigma = noise_sigma(frames[-1])
        return {
            "t": t,
            "time_s": time_s,
            "signal": signal,
            "surviving_fraction": surviving,
            "bleaching": 1.0 - surviving if math.isfinite(surviving) else math.nan,
            "snr": signal / sigma if sigma > 0 else math.nan,
            "confidence": self.confidence,
            "power_mw": power_mw,
            "exposure_ms": exposure_ms,
        }
