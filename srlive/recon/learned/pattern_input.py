"""What a pattern-conditioned SIM model reads: the measured pattern's band components.

A network fed raw SIM frames can ignore the pattern and sharpen the widefield image with
learned priors (the first learned SIM models did exactly that). Here the classical estimator
measures the pattern (wavevectors, per-frame phases, modulation: :class:`WienerSIM`'s blind
calibration, the same that reconstructs real data) and the model reads the reconstruction
split by band (:meth:`WienerSIM.components`) on the 2× grid:

* ``widefield``: the frames' mean, Fourier-interpolated (the model's base estimate);
* ``wiener-widefield``: the Wiener-filtered widefield band;
* ``side-a``: the ±1 side bands of angle a in their true place (what only the pattern gives);
* ``psf-px`` and ``pattern-frequency``: constant planes with the geometry, λ/(2NA) in camera
  pixels and the fringe frequency as a fraction of 2NA/λ, so one model serves a range of
  microscopes.

Frames made equal within each angle (the pattern removed) have side-band planes of exactly
zero, whatever the estimator said; so does an angle whose fringe was not found. The model
therefore has no input from which to super-resolve without the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srlive.recon.optics import NominalPattern
from srlive.recon.sim_params import SIMParameters
from srlive.recon.wiener_sim import WienerSIM

N_ANGLES = 3
BAND_CHANNELS = (
    "widefield",
    "wiener-widefield",
    *(f"side-{a}" for a in range(N_ANGLES)),
    "psf-px",
    "pattern-frequency",
)
SIDE_BANDS = slice(2, 2 + N_ANGLES)
HI_GRID_SHIFT_PX = 0.5  # a camera pixel's centre lies half a fine pixel from fine pixel 2k
PSF_PX_CENTRE = 2.5  # the geometry planes are centred and scaled to about ±1
PSF_PX_SCALE = 1.0
FREQUENCY_CENTRE = 0.85
FREQUENCY_SCALE = 0.15


@dataclass(frozen=True)
class BandGeometry:
    """The optics a band decomposition needs (camera pixel, NA, emission, nominal period)."""

    pixel_nm: float
    na: float
    emission_nm: float
    period_nm: float

    @property
    def psf_px(self) -> float:
        return self.emission_nm / (2 * self.na) / self.pixel_nm

    @property
    def frequency(self) -> float:
        """The fringe frequency as a fraction of the OTF cutoff 2NA/λ."""
        return self.emission_nm / (2 * self.na) / self.period_nm


def band_reconstructor(shape: tuple[int, int], geometry: BandGeometry) -> WienerSIM:
    """A Wiener reconstructor for offset-free frames of ``shape`` (blind, nominal period)."""
    return WienerSIM(
        shape,
        geometry.pixel_nm,
        geometry.na,
        geometry.emission_nm,
        offset_adu=0.0,
        nominal=NominalPattern(period_nm=geometry.period_nm),
    )


def band_features(frames: np.ndarray, geometry: BandGeometry) -> tuple[np.ndarray, SIMParameters]:
    """(len(BAND_CHANNELS), 2H, 2W) float32 planes of offset-free frames (9, H, W), in ADU.

    The pattern and the Wiener parameter are measured blind in these frames (nominal period
    only), in training and at inference alike: no earlier estimate stands in for a fringe
    these frames do not show.
    """
    wiener = band_reconstructor(frames.shape[-2:], geometry)
    params = wiener.calibrate(frames)
    bands = wiener.components(frames, shift_px=HI_GRID_SHIFT_PX)
    shape = bands.shape[-2:]
    psf = np.full(shape, (geometry.psf_px - PSF_PX_CENTRE) / PSF_PX_SCALE, np.float32)
    freq = np.full(shape, (geometry.frequency - FREQUENCY_CENTRE) / FREQUENCY_SCALE, np.float32)
    return np.concatenate([bands, psf[None], freq[None]]), params


def normalise_bands(features: np.ndarray, norm: float) -> np.ndarray:
    """Scale the image planes (all but the last two, the geometry) by a brightness norm."""
    out = features.copy()
    out[:-2] /= np.float32(norm)
    return out


def remove_pattern(frames: np.ndarray, n_phases: int = 3) -> np.ndarray:
    """The pattern-ablation input: each angle's frames replaced by their mean."""
    stack = np.asarray(frames, np.float32)
    grouped = stack.reshape(-1, n_phases, *stack.shape[-2:])
    mean = grouped.mean(axis=1, keepdims=True)
    return np.broadcast_to(mean, grouped.shape).reshape(stack.shape).copy()


def angles_found(params: SIMParameters) -> int:
    """Angles whose fringe was found in the data itself (not a fallback)."""
    return sum(
        1
        for m, src in zip(params.modulation, params.source, strict=True)
        if m > 0 and src == "estimated"
    )
