"""The fringe of a one-phase-per-angle SIM set (3 frames), measured in the frames themselves.

With one frame per angle the bands cannot be separated, but the fringe can still be found:
the residual ``R_a = D_a − mean(D)`` of angle a holds its own modulated image (weight 2/3)
and the others' (weight −1/3 each) and nothing else. Its spectrum peaks at the fringe
wavevector with the phase of the fringe, because the sample's mean brightness (its spectrum
at zero, far above its spectrum anywhere else) is carried there. Searched in an annulus
around a nominal period (±``PERIOD_SEARCH``) and refined to a fraction of a Fourier bin; the
modulation follows from the peak's height against the mean brightness and the OTF at k; a
peak that does not stand out of the annulus (``MIN_SIGNIFICANCE``) counts as not found, and
so does a frame whose own fringe is not clearly stronger in its residual than the others'.

Frames without a pattern (the same image three times) have residuals of exactly zero, so
nothing is found and every plane built from them is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from srlive.recon.otf import frequency_grid, widefield_otf

PERIOD_SEARCH = 0.05  # relative half-width of the searched annulus around the nominal period
MIN_SIGNIFICANCE = 6.0  # the candidate peak over the summed residual power's annulus median
ANGLE_TOLERANCE_DEG = 4.0  # the fringes lie 180°/n_angles apart, within this
MIN_OWN_RATIO = 1.3  # a frame's own fringe against the others' in its residual (ideally 2)
REFINE_STEPS = (0.25, 0.0625)  # sub-bin refinement grid spacing, in Fourier bins


@dataclass(frozen=True)
class SinglePhasePattern:
    """Per angle: wavevector (cycles/nm), fringe phase (rad), modulation, found."""

    k: tuple[tuple[float, float], ...]
    phases: np.ndarray
    modulation: np.ndarray
    significance: np.ndarray

    @property
    def found(self) -> np.ndarray:
        return self.modulation > 0


def residuals(frames: np.ndarray) -> np.ndarray:
    """Each frame minus the mean of the set (float32)."""
    stack = np.asarray(frames, np.float32)
    return stack - stack.mean(axis=0, keepdims=True)


def _dft_at(image: np.ndarray, ky: float, kx: float, pixel_nm: float) -> complex:
    """Σ image·e^{−2πi k·x}, x in nm from the grid origin."""
    h, w = image.shape
    y = np.arange(h, dtype=np.float64)[:, None] * pixel_nm
    x = np.arange(w, dtype=np.float64)[None, :] * pixel_nm
    ry = np.exp(-2j * np.pi * ky * y)
    rx = np.exp(-2j * np.pi * kx * x)
    return complex(np.sum(image * ry * rx))


def _refine(image: np.ndarray, k: tuple[float, float], pixel_nm: float) -> tuple[float, float]:
    """The wavevector near ``k`` where |DFT| is largest, to a fraction of a Fourier bin."""
    h, w = image.shape
    bins = (1.0 / (h * pixel_nm), 1.0 / (w * pixel_nm))
    best = k
    for step in REFINE_STEPS:
        centre = best
        candidates = [
            (centre[0] + dy * step * bins[0], centre[1] + dx * step * bins[1])
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        ]
        best = max(candidates, key=lambda q: abs(_dft_at(image, q[0], q[1], pixel_nm)))
    return best


def _candidate_peak(
    power: np.ndarray, region: np.ndarray, fy: np.ndarray, fx: np.ndarray
) -> tuple[tuple[float, float], float]:
    """The strongest bin of ``power`` in ``region`` and its power over the region's median."""
    inside = power[region]
    peak = int(np.argmax(inside))
    iy, ix = np.argwhere(region)[peak]
    return (float(fy[iy, ix]), float(fx[iy, ix])), float(inside[peak])


def estimate_single_phase(
    frames: np.ndarray, pixel_nm: float, na: float, wavelength_nm: float, period_nm: float
) -> SinglePhasePattern:
    """The fringe of each of the (n_angles, H, W) offset-free frames (one phase each).

    The residuals' summed power gives the strongest fringe orientation; the others lie
    180°/n from it. Each frame takes the candidate where its own residual is strongest (its
    fringe weighs 2/3 there, the others' −1/3), which must be a clear winner.
    """
    stack = np.asarray(frames, np.float32)
    res = residuals(stack)
    n = len(stack)
    h, w = stack.shape[-2:]
    fy, fx = np.broadcast_arrays(*frequency_grid((h, w), pixel_nm))
    annulus = np.abs(np.hypot(fy, fx) * period_nm - 1.0) < PERIOD_SEARCH
    annulus &= (fy > 0) | ((fy == 0) & (fx > 0))  # one of each ±k pair
    total = sum(np.abs(sfft.fft2(r, workers=-1)) ** 2 for r in res)
    median = max(float(np.median(total[annulus])), 1e-30)
    first, _ = _candidate_peak(total, annulus, fy, fx)
    theta0 = np.degrees(np.arctan2(*first))
    orientation = np.degrees(np.arctan2(fy, fx))
    candidates, significance = [], []
    for j in range(n):
        d = (orientation - theta0 - j * 180.0 / n) % 180.0
        near = annulus & (np.minimum(d, 180.0 - d) <= ANGLE_TOLERANCE_DEG)
        if not near.any():
            candidates.append(first)
            significance.append(0.0)
            continue
        k, peak = _candidate_peak(total, near, fy, fx)
        strength_at_k = [abs(_dft_at(r, k[0], k[1], pixel_nm)) for r in res]
        strongest = res[int(np.argmax(strength_at_k))]
        candidates.append(_refine(strongest, k, pixel_nm))
        significance.append(peak / median)
    strength = np.array([[abs(_dft_at(r, *k, pixel_nm)) for k in candidates] for r in res])
    brightness = float(stack.mean(axis=0).sum())
    ks, phases, mods, sig = [], [], [], []
    for a in range(n):
        j = int(np.argmax(strength[a]))
        others = np.delete(strength[a], j)
        clear = strength[a, j] >= MIN_OWN_RATIO * (others.max() if others.size else 0.0)
        claimed = [b for b in range(n) if int(np.argmax(strength[b])) == j]
        k = candidates[j]
        value = _dft_at(res[a], k[0], k[1], pixel_nm)
        otf = float(widefield_otf((1, 1), pixel_nm, na, wavelength_nm, (-k[0], -k[1]))[0, 0])
        # the residual's peak is (2/3)·(m/2)·brightness·OTF(k)
        m = 3.0 * abs(value) / max(brightness * otf, 1e-12)
        found = significance[j] >= MIN_SIGNIFICANCE and clear and len(claimed) == 1
        ks.append(k)
        phases.append(float(np.angle(value)))
        mods.append(float(np.clip(m, 0.0, 1.0)) if found and brightness > 0 else 0.0)
        sig.append(significance[j])
    return SinglePhasePattern(tuple(ks), np.asarray(phases), np.asarray(mods), np.asarray(sig))
