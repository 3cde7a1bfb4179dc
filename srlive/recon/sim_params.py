"""Blind estimation of 2D-SIM pattern parameters from the raw frames, with a verdict per angle.

Per angle (frames angle-major, ``n_phases`` ≥ 3 per angle):

1. **Wavevector.** The frames are separated into the widefield band ``c0`` and the +1 side
   band ``c1`` with nominal, equal phase steps. In real space ``c1·conj(c0)`` carries the
   sample's brightness on the fringe's carrier, so its spectrum has a coherent peak at the
   fringe wavevector k (the cross-correlation of the separated bands). Both bands are first
   weighted by the OTF and notched at zero frequency, so the sample's own low frequencies and
   the noise beyond the OTF do not compete. The map is whitened by its radial median and the
   peak searched over the frequencies the optics can carry (or around a nominal pattern).
   The angle's **significance** is −log10 of the chance that noise alone makes so high a
   peak anywhere in the region searched; the angle counts as found only above
   :data:`MIN_SIGNIFICANCE`. The peak is refined to a small fraction of a Fourier bin
   with zoomed DFTs.
2. **Phases.** Each frame's phase is the argument of its own cross-correlation with the
   widefield band at k, so steps that are not 2π/n, frames that differ in brightness and any
   phase order are measured, not assumed. The widefield band is then re-separated with the
   measured phases and the phases and k re-estimated once more.
3. **Modulation.** The separated side band, moved to its true place, is compared with the
   widefield band where both OTF copies overlap: the complex ratio is m/2 times the residual
   phase error, which is removed.

An angle that is not found is never reported as found: it takes a fallback wavevector when
one is known (``fallback``: a nominal pattern or the last good estimate; its phases are still
measured at that k), else it gives widefield information only (modulation 0).

Coordinates: r is measured from pixel (0, 0), the FFT's origin; k in cycles/nm; angles are
``atan2(k_row, k_col) mod 180°`` with k_row along increasing row index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from srlive.recon.fft_threads import FFT_WORKERS
from srlive.recon.optics import NominalPattern
from srlive.recon.sim_frames import (  # re-exported: the frame preparation SIM shares
    EDGE_PX,
    edge_taper,
    equal_phases,
    prepare_frames,
    separation_matrix,
)
from srlive.recon.sim_pattern import (  # the pattern as data: re-exported here
    PATTERN_FIELDS,
    SIMParameters,
    Source,
    pattern_columns,
    pattern_row,
)

MIN_SIGNIFICANCE = 3.0  # found: noise alone makes such a peak with a chance below 10⁻³
NOTCH = 0.3  # zero-frequency notch of the estimation filter, in units of the OTF cutoff
SEARCH = (0.35, 1.15)  # blind search annulus, in units of the OTF cutoff 2NA/λ
NOMINAL_PERIOD_TOL = 0.05  # relative period window around a nominal pattern
NOMINAL_ANGLE_TOL_DEG = 6.0
LOCAL_BINS = 2.0  # search radius (Fourier bins) around a previous estimate

__all__ = [
    "EDGE_PX",
    "PATTERN_FIELDS",
    "SIMParameters",
    "Source",
    "edge_taper",
    "equal_phases",
    "estimate_sim_parameters",
    "pattern_columns",
    "pattern_row",
    "prepare_frames",
    "refine_sim_parameters",
    "separation_matrix",
]


def _cutoff_px(pixel_nm: float, na: float, wavelength_nm: float) -> float:
    """The OTF cutoff 2NA/λ in cycles per camera pixel."""
    return 2 * na / wavelength_nm * pixel_nm


def _freq_px(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :]


def estimation_filter(shape: tuple[int, int], cutoff_px: float, otf_weight: bool) -> np.ndarray:
    """Zero-frequency notch inside the OTF support, optionally weighted by the OTF.

    The OTF-weighted filter is the matched filter (best significance, used to detect the
    peak and measure phases); the flat one refines k (the OTF weight pulls the peak towards
    the overlap's low frequencies on real data, where the true OTF is not the model's).
    """
    fy, fx = _freq_px(shape)
    rho = np.hypot(fy, fx) / cutoff_px
    notch = (1.0 - np.exp(-((rho / NOTCH) ** 2))) * (rho < 1.0)
    if not otf_weight:
        return notch.astype(np.float32)
    r = np.clip(rho, 0.0, 1.0)
    otf = (2 / np.pi) * (np.arccos(r) - r * np.sqrt(1 - r * r))
    return (otf * notch).astype(np.float32)


def whitening(widefield_rfft: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """1/√(radial mean power) of the widefield spectrum (rfft layout): all frequencies weigh
    the same.

    Without it the sample's strong low frequencies dominate the correlations, so a few
    Fourier bins decide k and the phases, and the incoherent cross terms bias them.
    """
    power = np.abs(widefield_rfft) ** 2
    power[0, 0] = 0.0
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    ring = np.round(np.hypot(fy, fx) * max(shape)).astype(int)
    ring = np.broadcast_to(ring, power.shape)
    radial = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    return (1.0 / np.sqrt(np.maximum(radial[ring], 1e-30 + radial.max() * 1e-12))).astype(
        np.float32
    )


@dataclass(frozen=True)
class _Filtered:
    """The set's frames through the two estimation filters (real images: filtering is
    linear, so every band's filtered image is a combination of these)."""

    detect: np.ndarray  # (n, H, W): whitened, OTF-weighted, notched
    flat: np.ndarray  # (n, H, W): notched inside the OTF support

    def group(self, a: int, n_phases: int) -> _Filtered:
        sl = slice(a * n_phases, (a + 1) * n_phases)
        return _Filtered(self.detect[sl], self.flat[sl])


def _filter_frames(frames: np.ndarray, cutoff_px: float) -> _Filtered:
    """Each frame through both estimation filters (one forward FFT per frame)."""
    shape = frames.shape[-2:]
    spectra = sfft.rfft2(frames, axes=(-2, -1), workers=FFT_WORKERS)
    half = shape[1] // 2 + 1
    whiten = whitening(spectra.mean(axis=0), shape)
    detect = estimation_filter(shape, cutoff_px, True)[:, :half] * whiten
    flat = estimation_filter(shape, cutoff_px, False)[:, :half]

    def through(filt: np.ndarray) -> np.ndarray:
        out = sfft.irfft2(spectra * filt, s=shape, axes=(-2, -1), workers=FFT_WORKERS)
        return out.astype(np.float32)

    return _Filtered(through(detect), through(flat))


def _dtft(image: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """DTFT of ``image`` at frequencies (cycles/pixel) fy × fx; origin at pixel (0, 0)."""
    y = np.arange(image.shape[0])
    x = np.arange(image.shape[1])
    ay = np.exp(-2j * np.pi * fy[:, None] * y[None, :])
    ax = np.exp(-2j * np.pi * x[:, None] * fx[None, :])
    return ay @ image @ ax


def _refine_peak(product: np.ndarray, k0: tuple[float, float]) -> tuple[float, float]:
    """Sub-bin maximum of |DTFT(product)| near k0 (cycles/pixel), by successive zooms."""
    step = np.array([1.0 / product.shape[0], 1.0 / product.shape[1]])
    ky, kx = k0
    for _ in range(5):
        gy = ky + step[0] * np.linspace(-1, 1, 7)
        gx = kx + step[1] * np.linspace(-1, 1, 7)
        power = np.abs(_dtft(product, gy, gx))
        iy, ix = np.unravel_index(np.argmax(power), power.shape)
        ky, kx = gy[iy], gx[ix]
        step /= 3
    return float(ky), float(kx)


@dataclass(frozen=True)
class SearchRegion:
    """Where to look for an angle's peak, in cycles/pixel."""

    rho: tuple[float, float]
    angle_deg: float | None = None  # centre of an angular window (mod 180°), None: any
    angle_tol_deg: float = 180.0
    centre: tuple[float, float] | None = None  # a previous estimate: search ±LOCAL_BINS
    radius: float = 0.0

    def mask(self, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
        rho = np.hypot(fy, fx)
        inside = (rho >= self.rho[0]) & (rho <= self.rho[1])
        if self.angle_deg is not None:
            ang = np.degrees(np.arctan2(fy, fx)) % 180.0
            diff = np.abs((ang - self.angle_deg + 90.0) % 180.0 - 90.0)
            inside &= diff <= self.angle_tol_deg
        if self.centre is not None:
            near = np.minimum(
                np.hypot(fy - self.centre[0], fx - self.centre[1]),
                np.hypot(fy + self.centre[0], fx + self.centre[1]),
            )
            inside &= near <= self.radius
        return inside


def _significance(score: np.ndarray, mask: np.ndarray, peak: float) -> float:
    """−log10 of the chance that noise alone puts a peak this high anywhere in ``mask``.

    Without a fringe the cross-correlation of two noisy bands is a complex Gaussian field,
    so its magnitude is Rayleigh-distributed: σ follows from the median (σ = median/√(2 ln 2))
    and the chance that any of the N values searched exceeds s·σ is N·exp(−s²/2).
    """
    values = score[mask]
    sigma = float(np.median(values)) / np.sqrt(2 * np.log(2))
    s = peak / max(sigma, 1e-30)
    return float((s * s / 2) / np.log(10) - np.log10(max(values.size, 1)))


def _whitened(power: np.ndarray, fy: np.ndarray, fx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|cross-correlation| divided by its median on rings of equal |f| (inside ``mask``)."""
    rho = np.hypot(fy, fx) * np.ones_like(power)
    ring = np.round(rho * max(power.shape)).astype(int)
    flat_ring = ring[mask]
    order = np.argsort(flat_ring, kind="stable")
    values = power[mask][order]
    rings, starts = np.unique(flat_ring[order], return_index=True)
    medians = np.array([np.median(v) for v in np.split(values, starts[1:])])
    lookup = np.ones(ring.max() + 1)
    lookup[rings] = np.maximum(medians, 1e-30)
    return np.where(mask, power / lookup[ring], 0.0)


def _find_peak(
    group: _Filtered, widefield: _Filtered, region: SearchRegion
) -> tuple[tuple[float, float], float]:
    """The peak of the +1 band's cross-correlation with the widefield band in ``region``,
    and its significance (bands separated with equal phase steps)."""
    sep1 = separation_matrix(equal_phases(len(group.detect)))[1]
    product = _band(sep1, group.detect) * widefield.detect[0]
    power = np.abs(sfft.fft2(product, workers=FFT_WORKERS))
    fy, fx = _freq_px(product.shape)
    mask = region.mask(fy, fx)
    # a tiny region (next to a previous estimate) is judged against the whole annulus
    judge = SearchRegion(region.rho).mask(fy, fx) if mask.sum() < 16 else mask
    score = _whitened(power, fy, fx, judge | mask)
    masked = np.where(mask, score, -np.inf)
    iy, ix = np.unravel_index(np.argmax(masked), masked.shape)
    z = _significance(score, judge, float(score[iy, ix]))
    k0 = (float(fy[iy, 0]), float(fx[0, ix]))
    k = _refine_peak(_band(sep1, group.flat) * widefield.flat[0], k0)
    return k, z


def _band(coeffs: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The band ``Σ coeffs[j]·frames[j]`` (a row of a separation matrix), complex64."""
    return np.tensordot(np.asarray(coeffs, np.complex64), frames, axes=(0, 0))


def _phases_at(frames: np.ndarray, c0: np.ndarray, k: tuple[float, float]) -> np.ndarray:
    """Each frame's fringe phase: arg of its cross-correlation with ``c0`` at k (cycles/px).

    The widefield band is taken out of each frame first, so its own correlation at k (the
    same for every frame) does not bias the phases. Frames and c0 are filtered already.
    """
    fy, fx = np.array([k[0]]), np.array([k[1]])
    return np.array([np.angle(_dtft((d - c0) * c0, fy, fx)[0, 0]) for d in frames])


def _otf_px(fy: np.ndarray, fx: np.ndarray, cutoff_px: float) -> np.ndarray:
    """The ideal in-focus OTF at frequencies (cycles/pixel)."""
    r = np.clip(np.hypot(fy, fx) / cutoff_px, 0.0, 1.0)
    return (2 / np.pi) * (np.arccos(r) - r * np.sqrt(1 - r * r))


def band_overlap(
    frames: np.ndarray,
    k: tuple[float, float],
    phases: np.ndarray,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
) -> complex:
    """Complex ratio of the +1 side band to the widefield band where their OTFs overlap.

    In the overlap ``C1(f)·O(f−k) = (m/2)·e^{iδ}·C0(f−k)·O(f)``: the magnitude of the ratio
    is m/2, its argument δ the residual phase error of the separation. Both sides are on
    the camera grid (C0(f−k) is the DTFT of c0·e^{i2πk·r}); the zero-frequency region of
    either band, where out-of-focus light and pattern leakage sit, is left out. ``k`` in
    cycles/nm.
    """
    sep = separation_matrix(phases)
    flat = frames.reshape(len(frames), -1)
    c0 = (sep[0] @ flat).reshape(frames.shape[-2:])
    c1 = (sep[1] @ flat).reshape(frames.shape[-2:])
    ky, kx = k[0] * pixel_nm, k[1] * pixel_nm
    h, w = c0.shape
    y = np.arange(h)[:, None]
    x = np.arange(w)[None, :]
    ramp = np.exp(2j * np.pi * (ky * y + kx * x))
    shifted = sfft.fft2(c0 * ramp, workers=FFT_WORKERS)  # C0(f − k)
    side = sfft.fft2(c1, workers=FFT_WORKERS)
    fy, fx = _freq_px((h, w))
    cutoff = _cutoff_px(pixel_nm, na, wavelength_nm)
    otf0 = _otf_px(fy, fx, cutoff)
    otf_k = _otf_px(fy - ky, fx - kx, cutoff)
    away = (np.hypot(fy, fx) > 0.15 * cutoff) & (np.hypot(fy - ky, fx - kx) > 0.15 * cutoff)
    region = (otf0 > 0.05) & (otf_k > 0.05) & away
    if not region.any():
        return 0j
    a = (otf0 * shifted)[region]
    b = (otf_k * side)[region]
    return complex(np.vdot(a, b) / np.vdot(a, a))


def _canonical(
    k: tuple[float, float], phases: np.ndarray
) -> tuple[tuple[float, float], np.ndarray]:
    """Choose the sign of k so its angle lies in [0°, 180°) (phases flip with it)."""
    ky, kx = k
    angle = np.arctan2(ky, kx)
    if angle < -1e-12 or angle >= np.pi - 1e-12:
        return (-ky, -kx), -phases
    return (ky, kx), phases


@dataclass(frozen=True)
class _Angle:
    k_px: tuple[float, float]
    phases: np.ndarray
    significance: float
    source: Source


def _estimate_angle(
    group: _Filtered,
    widefield: _Filtered,
    region: SearchRegion,
    fallback_px: tuple[float, float] | None,
    fallback_source: Source,
) -> _Angle:
    """Wavevector (cycles/px), phases, significance and source of one angle's frames."""
    n = len(group.detect)
    k, z = _find_peak(group, widefield, region)
    found = z >= MIN_SIGNIFICANCE
    if not found:
        if fallback_px is None:
            return _Angle((0.0, 0.0), equal_phases(n), z, "none")
        k = fallback_px
    phases = _phases_at(group.detect, widefield.detect[0], k)
    for _ in range(2):  # re-separate with the measured phases, then measure again
        sep = separation_matrix(phases)
        if found:
            c0_flat = np.real(_band(sep[0], group.flat))
            k = _refine_peak(_band(sep[1], group.flat) * c0_flat, k)
        phases = _phases_at(group.detect, np.real(_band(sep[0], group.detect)), k)
    return _Angle(k, phases, z, "estimated" if found else fallback_source)


def _regions(
    n_angles: int,
    cutoff_px: float,
    pixel_nm: float,
    nominal: NominalPattern | None,
    previous: SIMParameters | None,
    shape: tuple[int, int],
) -> list[SearchRegion]:
    """Where each angle's peak may be: near a previous estimate, a nominal pattern, or blind."""
    annulus = (SEARCH[0] * cutoff_px, min(SEARCH[1] * cutoff_px, 0.5 * np.sqrt(2)))
    regions = []
    for a in range(n_angles):
        if previous is not None and previous.source[a] != "none":
            ky, kx = previous.k[a]
            centre = (ky * pixel_nm, kx * pixel_nm)
            radius = LOCAL_BINS / min(shape)
            regions.append(SearchRegion(annulus, centre=centre, radius=radius))
        elif nominal is not None:
            k_nom = pixel_nm / nominal.period_nm
            rho = (k_nom * (1 - NOMINAL_PERIOD_TOL), k_nom * (1 + NOMINAL_PERIOD_TOL))
            if nominal.angles_deg is not None:
                ang = nominal.angles_deg[a]
                regions.append(SearchRegion(rho, ang, NOMINAL_ANGLE_TOL_DEG))
            else:
                regions.append(SearchRegion(rho))
        else:
            regions.append(SearchRegion(annulus))
    return regions


def _fallback_k(
    a: int, pixel_nm: float, nominal: NominalPattern | None, previous: SIMParameters | None
) -> tuple[tuple[float, float] | None, Source]:
    """The wavevector (cycles/px) to use for angle a if it is not found in this set."""
    if previous is not None and previous.source[a] != "none":
        ky, kx = previous.k[a]
        return (ky * pixel_nm, kx * pixel_nm), "previous"
    if nominal is not None and nominal.angles_deg is not None:
        theta = np.radians(nominal.angles_deg[a])
        k = pixel_nm / nominal.period_nm
        return (k * np.sin(theta), k * np.cos(theta)), "nominal"
    return None, "none"


def estimate_sim_parameters(
    raw: np.ndarray,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    n_angles: int = 3,
    n_phases: int = 3,
    offset_adu: float = 100.0,
    nominal: NominalPattern | None = None,
    previous: SIMParameters | None = None,
) -> SIMParameters:
    """Estimate k, phases, modulation and a verdict for every angle of one raw set.

    ``raw``: (n_angles·n_phases, H, W) or (A, P, H, W), angle-major, in ADU. ``nominal``
    narrows the search to a known period (and angles) and is the fallback for an angle that
    is not found; ``previous`` (the last good estimate) searches only next to it and is the
    fallback before ``nominal``.
    """
    frames = prepare_frames(raw, offset_adu, edge_taper(raw.shape[-2:]))
    if frames.shape[0] != n_angles * n_phases:
        raise ValueError(f"expected {n_angles * n_phases} frames, got {frames.shape[0]}")
    if n_phases < 3:
        raise ValueError(f"SIM needs at least 3 phases per angle, got {n_phases}")
    if nominal is not None and nominal.angles_deg and len(nominal.angles_deg) != n_angles:
        raise ValueError(
            f"{len(nominal.angles_deg)} nominal angles given for {n_angles} pattern angles"
        )
    shape = frames.shape[-2:]
    cutoff = _cutoff_px(pixel_nm, na, wavelength_nm)
    filtered = _filter_frames(frames, cutoff)
    widefield = _Filtered(filtered.detect.mean(axis=0)[None], filtered.flat.mean(axis=0)[None])
    regions = _regions(n_angles, cutoff, pixel_nm, nominal, previous, shape)
    ks: list[tuple[float, float]] = []
    phases, modulation, significance, sources = [], [], [], []
    for a in range(n_angles):
        group = frames[a * n_phases : (a + 1) * n_phases]
        fallback, fallback_source = _fallback_k(a, pixel_nm, nominal, previous)
        est = _estimate_angle(
            filtered.group(a, n_phases), widefield, regions[a], fallback, fallback_source
        )
        significance.append(est.significance)
        sources.append(est.source)
        if est.source == "none":
            ks.append((0.0, 0.0))
            phases.append(equal_phases(n_phases))
            modulation.append(0.0)
            continue
        k_px, ph = _canonical(est.k_px, est.phases)
        k_nm = (k_px[0] / pixel_nm, k_px[1] / pixel_nm)
        ratio = band_overlap(group, k_nm, ph, pixel_nm, na, wavelength_nm)
        ks.append(k_nm)
        phases.append(ph + np.angle(ratio))
        modulation.append(float(np.clip(2 * abs(ratio), 0.0, 1.0)))
    return SIMParameters(
        tuple(ks), np.array(phases), np.array(modulation), np.array(significance), tuple(sources)
    )


def refine_sim_parameters(
    raw: np.ndarray,
    params: SIMParameters,
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    offset_adu: float = 100.0,
    nominal: NominalPattern | None = None,
) -> SIMParameters:
    """Re-estimate a new set next to the last good estimate (its fallback when not found)."""
    n_phases = params.phases.shape[1]
    return estimate_sim_parameters(
        raw,
        pixel_nm,
        na,
        wavelength_nm,
        params.n_angles,
        n_phases,
        offset_adu,
        nominal=nominal,
        previous=params,
    )
