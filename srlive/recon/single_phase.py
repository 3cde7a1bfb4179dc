"""The fringe of a one-phase-per-angle SIM set (3 frames), measured in the frames themselves.

With one frame per angle the bands cannot be separated, but the fringe can still be found:
the residual ``R_a = D_a − mean(D)`` of angle a holds its own modulated image (weight 2/3)
and the others' (weight −1/3) and nothing else. Around ±k its spectrum is the sample's
spectrum shifted by k, with the fringe's phase: ``(m/3)·e^{iφ}·OTF(f)·S̃(f − k)``. Its
correlation with the widefield image's spectrum shifted by k,

    X_a(k) = Σ_f R̃_a(f)·conj(W̃_B(f − k)) ∝ DFT(R_a · W_B)(k),  W_B = PSF ⊗ mean(D),

adds that overlap coherently, ``(m/3)·e^{iφ}·Σ_g OTF(g + k)·|W̃(g)|²``: the phase is φ, the
modulation follows from the sum, and every structure in the sample adds to the peak (the
brightness alone, the g = 0 term, is what a plain Fourier peak of R_a would use: on sparse
samples and fine fringes, where OTF(k) is small, that peak is lost in the noise). So
the search runs over the Fourier transform of the products ``R_a·W_B``: in an annulus around
a nominal period (±``PERIOD_SEARCH``), refined to a fraction of a Fourier bin; a peak that
does not stand out of the annulus (``MIN_SIGNIFICANCE``) counts as not found, and so does a
frame whose own fringe is not clearly stronger in its product than the others'.

Frames without a pattern (the same image three times) have residuals of exactly zero, so
nothing is found and every plane built from them is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
from scipy import fft as sfft

from srlive.recon.fft_threads import FFT_WORKERS
from srlive.recon.otf import frequency_grid, widefield_otf

PERIOD_SEARCH = 0.05  # relative half-width of the searched annulus around the nominal period
MIN_SIGNIFICANCE = 6.0  # the candidate peak over the summed residual power's annulus median
ANGLE_TOLERANCE_DEG = 4.0  # the fringes lie 180°/n_angles apart, within this
MIN_OWN_RATIO = 1.15  # a frame's product at its own fringe against the others' (ideally 2)
REFINE_STEPS = (0.25, 0.0625)  # sub-bin refinement grid spacing, in Fourier bins
PERIOD_AGREEMENT = 0.015  # a candidate's period off the others' median by more is a structure


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
    """Σ image·e^{−2πi k·x}, x in nm from the grid origin (separable: two matrix-vector
    products, about a thousandth of the work of the full outer product)."""
    h, w = image.shape
    ax = (2 * np.pi * kx * pixel_nm) * np.arange(w)
    ay = (2 * np.pi * ky * pixel_nm) * np.arange(h)
    image = np.asarray(image, np.float32)
    rows = image @ np.cos(ax).astype(np.float32) - 1j * (image @ np.sin(ax).astype(np.float32))
    return complex(np.exp(-1j * ay) @ rows)


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


def _products(
    stack: np.ndarray, optics: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's residual times the whitened, OTF-filtered widefield image (n, H, W), and
    the weight each widefield frequency g gets in the correlation, ``|W̃(g)|·B(g)/OTF(g)``
    (H, W; :func:`_modulation` sums it).

    Whitening (each frequency divided by its amplitude plus the noise's) gives every
    structure of the sample the same say: the correlation peaks sharply at the fringe for
    smooth samples as for sparse ones (unwhitened, a smooth sample's few strong low
    frequencies pull the peak up to a Fourier bin off).
    """
    pixel_nm, na, wavelength_nm = optics
    shape = stack.shape[-2:]
    spectrum = sfft.fft2(stack.mean(axis=0), workers=FFT_WORKERS)
    otf = widefield_otf(shape, pixel_nm, na, wavelength_nm)
    amplitude = np.abs(spectrum).astype(np.float32)
    outside = otf <= 0
    noise = float(np.sqrt(np.mean(amplitude[outside] ** 2))) if outside.any() else 0.0
    weight = np.where(outside, 0.0, otf / (amplitude + noise + 1e-12)).astype(np.float32)
    filtered = sfft.ifft2(spectrum * weight, workers=FFT_WORKERS).real.astype(np.float32)
    signal = np.clip(amplitude**2 - noise**2, 0.0, None)
    overlap_weight = np.where(outside, 0.0, signal * weight / np.maximum(otf, 1e-6))
    return residuals(stack) * filtered, overlap_weight.astype(np.float32)


def _modulation(
    value: complex, power: np.ndarray, k: tuple[float, float], optics: tuple[float, float, float]
) -> float:
    """The modulation a product's Fourier value at k implies: it is
    (m/3)·Σ_g OTF(g + k)·|W̃(g)|²·B(g)/OTF(g) / N (the module docstring), ``power`` holding
    the signal's |W̃(g)|²·B(g)/OTF(g)."""
    pixel_nm, na, wavelength_nm = optics
    shifted = widefield_otf(power.shape, pixel_nm, na, wavelength_nm, (-k[0], -k[1]))
    overlap = float(np.vdot(shifted.ravel(), power.ravel()))
    return 3.0 * power.size * abs(value) / max(overlap, 1e-30)


def _star_power(total: np.ndarray, annulus: np.ndarray, n: int) -> np.ndarray:
    """Per annulus bin, the power there and at the bins 180°/n, 2·180°/n, ... around from it
    (nearest bin): the n fringes of a set lie so, a structure of the sample rarely does."""
    h, w = total.shape
    iy, ix = np.nonzero(annulus)
    y = np.where(iy > h // 2, iy - h, iy).astype(float)
    x = np.where(ix > w // 2, ix - w, ix).astype(float) * h / w  # in the rows' bin units
    star = np.zeros_like(total)
    for j in range(n):
        t = np.pi * j / n
        ry = np.rint(y * np.cos(t) + x * np.sin(t)).astype(int) % h
        rx = np.rint((x * np.cos(t) - y * np.sin(t)) * w / h).astype(int) % w
        star[iy, ix] += total[ry, rx]
    return star


def estimate_single_phase(
    frames: np.ndarray, pixel_nm: float, na: float, wavelength_nm: float, period_nm: float
) -> SinglePhasePattern:
    """The fringe of each of the (n_angles, H, W) offset-free frames (one phase each).

    The products' summed power gives the strongest fringe orientation; the others lie
    180°/n from it. The frames take the candidates in the order that makes their products
    strongest (a fringe weighs 2/3 in its own residual, −1/3 in the others'), each clearly
    stronger at its own than every other frame there.
    """
    stack = np.asarray(frames, np.float32)
    optics = (pixel_nm, na, wavelength_nm)
    products, power = _products(stack, optics)
    n = len(stack)
    h, w = stack.shape[-2:]
    fy, fx = np.broadcast_arrays(*frequency_grid((h, w), pixel_nm))
    annulus = np.abs(np.hypot(fy, fx) * period_nm - 1.0) < PERIOD_SEARCH
    annulus &= (fy > 0) | ((fy == 0) & (fx > 0))  # one of each ±k pair
    spectra = sfft.fft2(products, axes=(-2, -1), workers=FFT_WORKERS)
    total = np.sum(np.abs(spectra) ** 2, axis=0)
    median = max(float(np.median(total[annulus])), 1e-30)
    first, _ = _candidate_peak(_star_power(total, annulus, n), annulus, fy, fx)
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
        strength_at_k = [abs(_dft_at(r, k[0], k[1], pixel_nm)) for r in products]
        strongest = products[int(np.argmax(strength_at_k))]
        candidates.append(_refine(strongest, k, pixel_nm))
        significance.append(peak / median)
    radii = np.hypot(*np.asarray(candidates).T)
    agree = np.abs(radii / np.median(radii) - 1.0) <= PERIOD_AGREEMENT
    significance = [v if ok else 0.0 for v, ok in zip(significance, agree, strict=True)]
    # strength[a, j]: frame a's product at candidate j. A fringe weighs 2/3 in its own
    # residual and −1/3 in each other one, whatever the other angles' modulation: the frames
    # take the candidates in the order that makes them strongest, each clearly the
    # strongest at its own
    strength = np.array(
        [[abs(_dft_at(r, k[0], k[1], pixel_nm)) for k in candidates] for r in products]
    )
    order = max(permutations(range(n)), key=lambda o: sum(strength[a, o[a]] for a in range(n)))
    ranked = np.sort(strength, axis=0)
    bright = float(stack.mean()) > 0
    ks, phases, mods, sig = [], [], [], []
    for a in range(n):
        j = order[a]
        others = ranked[-2, j] if strength[a, j] >= ranked[-1, j] else ranked[-1, j]
        clear = strength[a, j] >= MIN_OWN_RATIO * (others if n > 1 else 0.0)
        k = candidates[j]
        value = _dft_at(products[a], k[0], k[1], pixel_nm)
        found = significance[j] >= MIN_SIGNIFICANCE and clear and bright
        m = _modulation(value, power, k, optics) if found else 0.0
        ks.append(k)
        phases.append(float(np.angle(value)))
        mods.append(float(np.clip(m, 0.0, 1.0)))
        sig.append(significance[j])
    return SinglePhasePattern(tuple(ks), np.asarray(phases), np.asarray(mods), np.asarray(sig))


PROBE_BINS = 4.0  # the noise probes around a known wavevector, in Fourier bins
PROBES = 8


def measure_at(
    frames: np.ndarray,
    k: tuple[tuple[float, float], ...],
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
) -> SinglePhasePattern:
    """Phases and modulation of a one-phase-per-angle set at known wavevectors ``k``.

    What a live series measures per set once its fringe is known (a few matrix-vector
    products after two FFTs, instead of a search). Significance: the product's power at k over
    the median
    power at :data:`PROBES` wavevectors :data:`PROBE_BINS` Fourier bins around it (where only
    noise and the sample are); below :data:`MIN_SIGNIFICANCE` the angle counts as not found,
    as in :func:`estimate_single_phase`. Frames without a pattern find nothing.
    """
    stack = np.asarray(frames, np.float32)
    optics = (pixel_nm, na, wavelength_nm)
    products, power = _products(stack, optics)
    h, w = stack.shape[-2:]
    bright = float(stack.mean()) > 0
    step = PROBE_BINS / (min(h, w) * pixel_nm)
    around = [
        (step * np.sin(t), step * np.cos(t)) for t in np.linspace(0, 2 * np.pi, PROBES, False)
    ]
    phases, mods, sig = [], [], []
    for product, (ky, kx) in zip(products, k, strict=True):
        value = _dft_at(product, ky, kx, pixel_nm)
        noise = np.median(
            [abs(_dft_at(product, ky + dy, kx + dx, pixel_nm)) ** 2 for dy, dx in around]
        )
        significance = abs(value) ** 2 / max(float(noise), 1e-30)
        found = significance >= MIN_SIGNIFICANCE and bright
        m = _modulation(value, power, (ky, kx), optics) if found else 0.0
        phases.append(float(np.angle(value)))
        mods.append(float(np.clip(m, 0.0, 1.0)))
        sig.append(significance)
    return SinglePhasePattern(tuple(k), np.asarray(phases), np.asarray(mods), np.asarray(sig))
