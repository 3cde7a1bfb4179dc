"""SOFI: super-resolution optical fluctuation imaging (Dertinger et al., PNAS 2009).

Each pixel's time trace gives its zero-lag auto-cumulant of order n = 2..4 on the camera
grid: k2 = m2 (variance), k3 = m3 (3rd central moment, signed: negative where emitters are
on more than half the time), k4 = m4 - 3·m2² (returned as |k4|). A blinking emitter of
brightness ε, on-fraction ρ and PSF U contributes ε^n·f_n(ρ)·U^n, so the image of order n
has a PSF narrower by √n (for a Gaussian U) and a brightness response that is ε^n.

``balanced=True`` is the brightness linearisation of balanced SOFI (Geissbuehler et al.,
Opt. Nanoscopy 2012) in its ratio form: the on-fraction is estimated per pixel from
K = k4·k2/k3² = (1 - 6ρ + 6ρ²)/(1 - 2ρ)² (the sign of k3 picks ρ < 1/2 or ρ > 1/2), and the
image is (|k_n| / |f_n(ρ)|)^(1/n) ≈ ε·U: linear in the emitters' brightness, independent of
their on-fraction. Left out: bSOFI's deconvolution before the n-th root, so the balanced image
keeps the widefield PSF width (it needs the PSF); cross-cumulant pixel interpolation.

Zero-lag cumulants include the shot noise's own cumulants (mean photons for Poisson noise) as
a pedestal. The camera offset does not change cumulants of order >= 2; ``offset_adu`` is
subtracted anyway, to float precision without effect.
"""

from __future__ import annotations

import numpy as np

_ROWS_BYTES = 64 * 2**20  # float64 bytes of one row block of the burst (bounds memory)
_RHO_LIMITS = (0.01, 0.99)
_F_FLOOR = 1e-3  # |f_n(ρ)| floor: near its zeros (ρ = 1/2 for n = 3, 0.21/0.79 for n = 4)


def cumulants(burst: np.ndarray, offset_adu: float = 0.0) -> tuple[np.ndarray, ...]:
    """Zero-lag auto-cumulants (k2, k3, k4) of each pixel of a (T, H, W) burst, float64."""
    burst = np.asarray(burst)
    t, h, w = burst.shape
    rows = max(1, min(h, _ROWS_BYTES // max(1, t * w * 8)))
    k2, k3, k4 = (np.empty((h, w)) for _ in range(3))
    for y0 in range(0, h, rows):
        x = burst[:, y0 : y0 + rows].astype(np.float64)
        if offset_adu:
            x -= offset_adu
        x -= x.mean(axis=0)
        x2 = x * x
        m2 = x2.mean(axis=0)
        m3 = np.einsum("tij,tij->ij", x2, x) / t
        m4 = np.einsum("tij,tij->ij", x2, x2) / t
        k2[y0 : y0 + rows] = m2
        k3[y0 : y0 + rows] = m3
        k4[y0 : y0 + rows] = m4 - 3 * m2 * m2
    return k2, k3, k4


def on_fraction(k2: np.ndarray, k3: np.ndarray, k4: np.ndarray) -> np.ndarray:
    """Per-pixel on-fraction ρ from the cumulant ratio of balanced SOFI, clipped to 0.01..0.99."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = k4 * k2 / (k3 * k3)
    ratio = np.where(np.isfinite(ratio), np.minimum(ratio, 1.0), -np.inf)
    x = 1.0 / (3.0 - 2.0 * ratio)  # (1 - 2ρ)²; 0 where k3 = 0 (ρ = 1/2)
    rho = 0.5 * (1.0 - np.sign(k3) * np.sqrt(x))
    return np.clip(rho, *_RHO_LIMITS)


def _f(order: int, rho: np.ndarray) -> np.ndarray:
    """f_n(ρ): the on-fraction factor of a blinking emitter's n-th cumulant."""
    base = rho * (1 - rho)
    if order == 2:
        return base
    if order == 3:
        return base * (1 - 2 * rho)
    return base * (1 - 6 * rho + 6 * rho * rho)


def sofi(
    burst: np.ndarray, order: int = 2, balanced: bool = False, offset_adu: float = 0.0
) -> np.ndarray:
    """SOFI image of order 2..4 of a (T, H, W) burst, (H, W) float32 (see the module docstring)."""
    burst = np.asarray(burst)
    if burst.ndim != 3 or min(burst.shape) < 1:
        raise ValueError(f"SOFI needs a (frames, height, width) burst, got shape {burst.shape}")
    if order not in (2, 3, 4):
        raise ValueError(f"SOFI order must be 2, 3 or 4, got {order}")
    if burst.shape[0] < order + 1:
        raise ValueError(f"SOFI of order {order} needs at least {order + 1} frames")
    k = cumulants(burst, offset_adu)
    kn = k[order - 2]
    if not balanced:
        return (np.abs(kn) if order == 4 else kn).astype(np.float32)
    f = np.abs(_f(order, on_fraction(*k)))
    value = np.abs(kn) / np.maximum(f, _F_FLOOR)
    return np.power(value, 1.0 / order).astype(np.float32)


def fluctuation_significance(burst: np.ndarray, offset_adu: float = 0.0) -> float:
    """How clearly a (T, H, W) burst fluctuates beyond its noise: a z-score (0: not at all).

    SOFI's zero-lag cross-cumulant of neighbouring pixels (one pixel over, along each axis)
    summed over the brightest quarter of the field: a blinking dye's PSF spans several pixels,
    so its fluctuations correlate neighbours, while shot and read noise are independent between
    pixels and leave no pedestal. Under noise alone each pair's sum Σₜ dᵢdⱼ has variance
    ≈ vᵢvⱼ/(T−1) (vᵢ = Σₜ dᵢ²), so the summed cross-cumulant divided by the root of the summed
    variances is ~N(0, 1); a burst of identical frames gives exactly 0.
    """
    x = np.asarray(burst, np.float64)
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"need a (frames >= 2, height, width) burst, got shape {x.shape}")
    mean = x.mean(axis=0) - offset_adu
    d = x - x.mean(axis=0)
    v = np.einsum("tij,tij->ij", d, d)
    bright = mean >= np.percentile(mean, 75)
    total, spread = 0.0, 0.0
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        pair = bright[tuple(a)] & bright[tuple(b)]
        cross = np.einsum("tij,tij->ij", d[(slice(None), *a)], d[(slice(None), *b)])
        total += float(cross[pair].sum())
        spread += float((v[tuple(a)] * v[tuple(b)])[pair].sum())
    if spread <= 0:
        return 0.0
    return total / np.sqrt(spread / (x.shape[0] - 1))
