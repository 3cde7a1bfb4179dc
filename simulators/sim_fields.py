"""Prior-free density fields for SIM training and evaluation: structure no cell prescribes.

A network trained on filaments and vesicles can learn what cells look like instead of what the
pattern measured. These densities have no typical shape or scale:

* the dye layouts of :mod:`simulators.fluctuation_fields` (random arcs, points and clusters,
  rings and discs, stars; ``spirals`` held out of training), rendered as dye counts per pixel;
* ``texture``: a positive random field with a power-law spectrum (exponent 1-3, the range of
  natural images) passed through a random soft threshold, so it is sometimes a smooth cloud,
  sometimes sparse speckle.

Each returns a float32 density on a grid of ``shape`` with ``pixel_nm`` pixels, mean-free of
any biological length scale; its absolute scale is arbitrary (callers normalise brightness).
"""

from __future__ import annotations

import numpy as np

from simulators.fluctuation import histogram_points
from simulators.fluctuation_fields import PRIOR_FREE_KINDS, prior_free_emitters

SIM_PRIOR_FREE_KINDS = (*PRIOR_FREE_KINDS, "texture")
SIM_TRAIN_PRIOR_FREE = ("segments", "points", "rings", "stars", "texture")  # spirals held out


def texture_density(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A random positive field with a 1/f^β spectrum (β in 1-3) and a random soft threshold."""
    rng = np.random.default_rng(seed)
    beta = rng.uniform(1.0, 3.0)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amplitude = f ** (-beta / 2)
    amplitude[0, 0] = 0.0
    noise = rng.normal(size=(shape[0], shape[1] // 2 + 1)) + 1j * rng.normal(
        size=(shape[0], shape[1] // 2 + 1)
    )
    field = np.fft.irfft2(noise * amplitude, s=shape)
    field = (field - field.mean()) / max(float(field.std()), 1e-12)
    threshold = rng.uniform(-0.5, 2.0)  # high: sparse speckle; low: a smooth cloud
    softness = rng.uniform(0.05, 0.5)
    density = np.logaddexp(0.0, (field - threshold) / softness) * softness
    return density.astype(np.float32)


def prior_free_density(
    kind: str, shape: tuple[int, int], pixel_nm: float, seed: int, density: float = 1.0
) -> np.ndarray:
    """Dyes per pixel of one prior-free layout (``SIM_PRIOR_FREE_KINDS``) on a grid."""
    if kind == "texture":
        return texture_density(shape, seed)
    if kind not in PRIOR_FREE_KINDS:
        raise ValueError(f"unknown prior-free kind {kind!r} (choose from {SIM_PRIOR_FREE_KINDS})")
    field_nm = (shape[0] * pixel_nm, shape[1] * pixel_nm)
    emitters = prior_free_emitters(kind, field_nm, seed, density)
    return histogram_points(emitters.positions_nm, emitters.brightness, shape, pixel_nm)
