"""How far to trust a learned reconstruction: one expected error, then a confidence.

Everything that makes an output wrong is expressed as an expected error relative to the
output's dynamic range (the scale PSNR and SSIM judge), and the terms add in quadrature:

* *predicted error* ``e``: the model's own per-pixel error scale (a Laplace scale trained by
  likelihood), averaged over the image. The pattern-conditioned SIM models learn it against
  the microscope's SIM limit, so it includes the resolution an output lacks where no pattern
  was measured, as well as noise and structure the model reconstructs badly;
* *saturation*: clipped pixels (a pile-up within read noise of the top value) break the
  linear forward model; each costs about :data:`SATURATED_PIXEL_ERROR` of the range there,
  so a set with ``s`` of its pixels clipped adds ``s · SATURATED_PIXEL_ERROR``;
* *geometry*: an acquisition ``Δ`` (relative distance) outside the geometry range the model
  was trained on adds ``Δ · GEOMETRY_ERROR`` (a model trained across a range of microscopes
  degrades gracefully beyond it); a model trained on one geometry adds ``Δ ·
  SINGLE_GEOMETRY_ERROR`` for a distance beyond its small tolerance;
* *pattern not measured* (SIM models): each angle whose fringe was not found adds its share
  of the error a missing pattern causes beyond what the model predicts, calibrated on
  held-in pairs imaged with and without the pattern (``pattern_missing_error`` in the
  weights' trust record, :func:`srlive.learn.trust.pattern_missing_error`).

``confidence = 1 / (1 + (E / e₉₀)²)``, ``E`` the quadrature sum and ``e₉₀`` the 90th
percentile of ``e`` on held-in simulated data (stored with the weights): 0.5 means "as
unsure as the worst tenth of training data", and confidence falls smoothly as the expected
error grows, never by a hard cut.
"""

from __future__ import annotations

import math

SATURATED_PIXEL_ERROR = 0.3  # expected error at a clipped pixel, relative to the range
GEOMETRY_ERROR = 0.1  # expected relative error per unit of relative geometry mismatch
SINGLE_GEOMETRY_ERROR = 1.0  # the same for a model trained on one geometry
DEFAULT_E90 = 0.05  # the reference error of a model without a trust calibration


def expected_error(
    predicted: float,
    saturated: float,
    mismatch: float,
    geometry_error: float = GEOMETRY_ERROR,
    missing_pattern: float = 0.0,
) -> float:
    """The quadrature sum of the predicted error (NaN: none) and the input checks' terms."""
    terms = (
        predicted,
        saturated * SATURATED_PIXEL_ERROR,
        mismatch * geometry_error,
        missing_pattern,
    )
    return math.sqrt(sum(t * t for t in terms if math.isfinite(t)))


def confidence(expected: float, e90: float) -> float:
    """1 / (1 + (E/e₉₀)²) (``e90`` not finite: a model never calibrated, DEFAULT_E90)."""
    reference = e90 if math.isfinite(e90) and e90 > 0 else DEFAULT_E90
    return 1.0 / (1.0 + (expected / reference) ** 2)
