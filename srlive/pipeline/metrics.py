"""Signal and bleaching per set, from the raw frames: what the viewer plots and the
optimizer observes (one definition, :func:`srlive.optimize.metrics.set_metrics`).

Per set: the structure's peak signal above background in photo-electrons per pixel per frame
(``signal``), its per-frame SNR through the camera noise model, the brightness per unit
light, the saturated fraction and the motion since the previous set; and the
``surviving_fraction``: brightness per unit light relative to the series' first set
(emission is linear in power × exposure, so sets at other settings compare directly);
``bleaching = 1 − surviving_fraction``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from srlive.optimize.metrics import NoiseModel, set_metrics


class SignalTracker:
    """Turns each set into signal / bleaching / SNR metrics (one instance per series)."""

    def __init__(self, noise: NoiseModel) -> None:
        self.noise = noise
        self._reference: float | None = None  # brightness of the first set
        self._previous: np.ndarray | None = None  # widefield image of the previous set
        self.confidence = math.nan  # latest SR confidence, carried into the metrics

    def update(
        self, t: int, time_s: float, frames: np.ndarray, power_mw: float, exposure_ms: float
    ) -> dict[str, Any]:
        """Metrics of one set of raw frames (n, H, W) in ADU."""
        metrics, self._previous = set_metrics(
            frames, self.noise, power_mw, exposure_ms, previous_widefield=self._previous
        )
        brightness = metrics["brightness"]
        if self._reference is None and brightness > 0:
            self._reference = brightness
        surviving = brightness / self._reference if self._reference else math.nan
        return {
            "t": t,
            "time_s": time_s,
            **metrics,
            "signal": metrics["signal_e"],
            "surviving_fraction": surviving,
            "bleaching": 1.0 - surviving if math.isfinite(surviving) else math.nan,
            "confidence": self.confidence,
            "power_mw": power_mw,
            "exposure_ms": exposure_ms,
        }
