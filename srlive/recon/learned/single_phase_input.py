"""What the 3-frame SIM model reads: each frame demodulated by its own measured fringe.

With one phase per angle the bands cannot be separated as in 9-frame SIM, but each frame's
fringe (wavevector, phase, modulation) can still be measured in the frames themselves
(:func:`srlive.recon.single_phase.estimate_single_phase`). Its residual ``R_a = D_a − mean(D)``
holds only the modulated light (the unmodulated image is common to all frames), and
multiplying it by ``cos θ_a`` and ``sin θ_a`` (``θ_a = 2π k_a·x + φ_a``) on the 2× grid moves
the side bands' content from ±k back to its true place: beyond the widefield cutoff along
k_a, mixed with its mirror image about k_a (one phase cannot tell the two apart; three
angles with overlapping side bands and a positive sample mostly can). The model reads:

* ``widefield``: the frames' mean, Fourier-interpolated to the 2× grid (its base estimate);
* ``cos-a``, ``sin-a``: angle a's residual demodulated in phase and in quadrature, divided by
  half the measured modulation (the pair holds the residual entirely: ``R = C cos θ + S sin θ``);
* ``psf-px`` and ``pattern-frequency``: the geometry as constant planes, as for ``dl-sim9``.

Frames without a pattern (one widefield image three times) have residuals of exactly zero, and
an angle whose fringe is not found gets zero planes: there is then nothing to super-resolve
from. Live, :class:`FringeTracker` measures the fringe blind on the first set and again every
:data:`REFINE_EVERY_SETS` sets, and in between only each set's phases and modulation at the
known wavevectors (as Wiener SIM's live reconstructor refines its estimate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from srlive.recon.fft_threads import FFT_WORKERS
from srlive.recon.learned.pattern_input import (
    FREQUENCY_CENTRE,
    FREQUENCY_SCALE,
    N_ANGLES,
    PSF_PX_CENTRE,
    PSF_PX_SCALE,
    BandGeometry,
)
from srlive.recon.single_phase import SinglePhasePattern, estimate_single_phase, measure_at

SINGLE_PHASE_CHANNELS = (
    "widefield",
    *(f"{plane}-{a}" for a in range(N_ANGLES) for plane in ("cos", "sin")),
    "psf-px",
    "pattern-frequency",
)
DEMODULATED = slice(1, 1 + 2 * N_ANGLES)
GEOMETRY_PLANES = 2  # the trailing constant planes
MIN_DEMODULATION = 0.2  # the measured modulation the demodulated planes are divided by, at least
REFINE_EVERY_SETS = 10  # a live series' blind re-measurement of its fringe


def upsample_frames(stack: np.ndarray) -> np.ndarray:
    """Band-limited 2× interpolation of (N, H, W) frames onto the simulation's fine grid
    (camera pixel j's centre half a fine pixel after fine pixel 2j: a quarter camera pixel's
    shift, applied to the spectrum for free)."""
    n, h, w = stack.shape
    spectrum = sfft.rfft2(stack, workers=FFT_WORKERS)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    spectrum *= np.exp(-2j * np.pi * 0.25 * (fy + fx)).astype(np.complex64)
    big = np.zeros((n, 2 * h, w + 1), np.complex64)
    big[:, : h // 2, : w // 2 + 1] = spectrum[:, : h // 2]
    big[:, -(h // 2) :, : w // 2 + 1] = spectrum[:, -(h // 2) :]
    out = sfft.irfft2(big, s=(2 * h, 2 * w), workers=FFT_WORKERS)
    return (out * 4).astype(np.float32)


@dataclass
class _FringeMaps:
    """cos and sin of 2π k·x on the fine grid for one set of wavevectors (phase 0), cached:
    a set's own phase φ then costs two products (cos(θ₀+φ) = cos θ₀ cos φ − sin θ₀ sin φ)."""

    key: tuple = ()
    cos: list[np.ndarray] = field(default_factory=list)
    sin: list[np.ndarray] = field(default_factory=list)

    def update(self, shape: tuple[int, int], pixel_nm: float, k: tuple) -> None:
        key = (shape, pixel_nm, tuple(k))
        if key == self.key:
            return
        h, w = shape
        # fine pixel i sits (i − ½)/2 camera pixels from camera pixel 0
        y = (np.arange(2 * h, dtype=np.float64)[:, None] - 0.5) * pixel_nm / 2
        x = (np.arange(2 * w, dtype=np.float64)[None, :] - 0.5) * pixel_nm / 2
        self.cos, self.sin = [], []
        for ky, kx in k:
            # e^{iθ} as the outer product of a column and a row (no 2-D trigonometry)
            column = np.exp(2j * np.pi * ky * y).astype(np.complex64)
            plane = column * np.exp(2j * np.pi * kx * x).astype(np.complex64)
            self.cos.append(plane.real.astype(np.float32))
            self.sin.append(plane.imag.astype(np.float32))
        self.key = key


def demodulated_planes(
    frames: np.ndarray,
    pattern: SinglePhasePattern,
    geometry: BandGeometry,
    maps: _FringeMaps | None = None,
) -> np.ndarray:
    """(len(SINGLE_PHASE_CHANNELS), 2H, 2W) planes of offset-free frames (3, H, W), in ADU,
    demodulated by ``pattern`` (measured in these frames)."""
    stack = np.asarray(frames, np.float32)
    h, w = stack.shape[-2:]
    up = upsample_frames(stack)
    mean = up.mean(axis=0)
    out = np.empty((len(SINGLE_PHASE_CHANNELS), 2 * h, 2 * w), np.float32)
    out[0] = mean
    out[DEMODULATED] = 0.0
    if pattern.found.any():
        maps = maps or _FringeMaps()
        maps.update((h, w), geometry.pixel_nm, pattern.k)
        for a in np.flatnonzero(pattern.found):
            residual = up[a] - mean
            gain = 2.0 / max(float(pattern.modulation[a]), MIN_DEMODULATION)
            c = np.float32(np.cos(pattern.phases[a]) * gain)
            s = np.float32(np.sin(pattern.phases[a]) * gain)
            rc, rs = residual * maps.cos[a], residual * maps.sin[a]
            out[1 + 2 * a] = rc * c - rs * s  # R cos(θ₀ + φ), scaled
            out[2 + 2 * a] = rs * c + rc * s  # R sin(θ₀ + φ), scaled
    out[-2] = (geometry.psf_px - PSF_PX_CENTRE) / PSF_PX_SCALE
    out[-1] = (geometry.frequency - FREQUENCY_CENTRE) / FREQUENCY_SCALE
    return out


def measure_fringe(frames: np.ndarray, geometry: BandGeometry) -> SinglePhasePattern:
    """The fringe of each frame, measured blind in the frames (nominal period only)."""
    return estimate_single_phase(
        frames, geometry.pixel_nm, geometry.na, geometry.emission_nm, geometry.period_nm
    )


def single_phase_features(
    frames: np.ndarray, geometry: BandGeometry
) -> tuple[np.ndarray, SinglePhasePattern]:
    """The model's planes of offset-free frames (3, H, W), the fringe measured blind in them."""
    pattern = measure_fringe(frames, geometry)
    return demodulated_planes(frames, pattern, geometry), pattern


class FringeTracker:
    """A live series' fringe: blind on the first set and every ``refine_every`` sets; in
    between each set's phases and modulation at the last wavevectors found (an angle not
    found blind keeps its earlier wavevector). One per series, never shared."""

    def __init__(self, refine_every: int = REFINE_EVERY_SETS) -> None:
        self.refine_every = refine_every
        self.k: tuple[tuple[float, float], ...] | None = None
        self.sets = 0
        self.blind_estimates = 0
        self._maps = _FringeMaps()

    def measure(self, frames: np.ndarray, geometry: BandGeometry) -> SinglePhasePattern:
        """This set's fringe (blind when due, else at the known wavevectors)."""
        known = self.k
        self.sets += 1
        if known is not None and (self.sets - 1) % self.refine_every != 0:
            return measure_at(frames, known, geometry.pixel_nm, geometry.na, geometry.emission_nm)
        blind = measure_fringe(frames, geometry)
        self.blind_estimates += 1
        if self.k is None:
            self.k = blind.k if blind.found.any() else None
        else:
            self.k = tuple(
                new if found else old
                for new, old, found in zip(blind.k, self.k, blind.found, strict=True)
            )
        return blind

    def features(self, frames: np.ndarray, geometry: BandGeometry) -> tuple[np.ndarray, int]:
        """The model's planes of one set and the angles whose fringe was found in it."""
        pattern = self.measure(frames, geometry)
        planes = demodulated_planes(frames, pattern, geometry, self._maps)
        return planes, int(pattern.found.sum())
