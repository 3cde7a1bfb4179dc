"""Signal and bleaching per set, from the raw frames: what the viewer plots and the
optimizer observes (one definition, :func:`srlive.recon.set_metrics.set_metrics`).

Per set: the structure's peak signal above background in photo-electrons per pixel per frame
(``signal``), its per-frame SNR through the camera noise model, the brightness per unit
light, the saturated fraction and the motion since the previous set; and the
``surviving_fraction``: brightness per unit light relative to the series' first set
(emission is linear in power × exposure, so sets at other settings compare directly);
``bleaching = 1 − surviving_fraction``.
"""

from __future__ import annotations

import math

import numpy as np

from srlive.recon.set_metrics import NoiseModel, SetMetrics, set_metrics


class SignalTracker:
    """Turns each set into signal / bleaching / SNR metrics (one instance per series)."""

    def __init__(self, noise: NoiseModel) -> None:
        self.noise = noise
        self._reference: float | None = None  # brightness of the first set
        self._previous: np.ndarray | None = None  # widefield image of the previous set
        self.confidence = math.nan  # latest SR confidence, carried into the metrics

    def update(
        self,
        series: str,
        modality: str,
        t: int,
        time_s: float,
        frames: np.ndarray,
        power_mw: float,
        exposure_ms: float,
        dose: tuple[float, float | None] = (math.nan, None),
    ) -> SetMetrics:
        """Metrics of one set of raw frames (n, H, W) in ADU; ``dose``: the sample's dose
        before the set and what is left of its budget."""
        metrics, self._previous = set_metrics(
            frames, self.noise, power_mw, exposure_ms, previous_widefield=self._previous
        )
        brightness = metrics["brightness"]
        if self._reference is None and brightness > 0:
            self._reference = brightness
        surviving = brightness / self._reference if self._reference else math.nan
        return SetMetrics(
            series,
            modality,
            t,
            time_s,
            power_mw,
            exposure_ms,
            surviving_fraction=surviving,
            confidence=self.confidence,
            dose_before_mj=dose[0],
            remaining_budget_mj=dose[1],
            **metrics,
        )
