"""Image resolution: Fourier ring correlation and decorrelation analysis (pure functions)."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from srlive.recon.fft_threads import FFT_WORKERS

# power per pixel of a ring, relative to the strongest ring, below which it holds only
# rounding (float32 rounding sits near 1e-14; any measured image's noise far above 1e-10)
EMPTY_RING_FLOOR = 1e-10


def _window(shape: tuple[int, int]) -> np.ndarray:
    """Tukey-like soft edge (1 inside, cos² roll-off over 1/8 of each side)."""

    def ramp(n: int) -> np.ndarray:
        w = np.ones(n)
        e = max(1, n // 8)
        t = (np.arange(e) + 0.5) / e
        w[:e] = np.sin(np.pi / 2 * t) ** 2
        w[-e:] = w[:e][::-1]
        return w

    return np.outer(ramp(shape[0]), ramp(shape[1]))


def _prepare(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, np.float64)
    return (img - img.mean()) * _window(img.shape)


def _empty_rings(img: np.ndarray, ring: np.ndarray, n_bins: int) -> np.ndarray:
    """Rings where the image's own (unwindowed) spectrum has numerically no power per pixel:
    beyond the band limit of an image that is band-limited on its periodic grid (Fourier
    upsampled, or blurred through an OTF), where only rounding is left."""
    spectrum = sfft.fft2(np.asarray(img, np.float64) - np.mean(img), workers=FFT_WORKERS)
    power = np.bincount(ring.ravel(), (np.abs(spectrum) ** 2).ravel(), n_bins + 1)
    per_pixel = power / np.maximum(np.bincount(ring.ravel(), None, n_bins + 1), 1)
    return per_pixel <= EMPTY_RING_FLOOR * per_pixel.max()


def frc_curve(
    img1: np.ndarray, img2: np.ndarray, pixel_nm: float, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two images of the same field: (freq cycles/nm, FRC)."""
    if img1.shape != img2.shape:
        raise ValueError("FRC needs two images of the same shape")
    f1 = sfft.fft2(_prepare(img1), workers=FFT_WORKERS)
    f2 = sfft.fft2(_prepare(img2), workers=FFT_WORKERS)
    h, w = img1.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.hypot(fy * h, fx * w) * (min(h, w) / max(h, w))  # ring index in bins
    n_bins = n_bins or min(h, w) // 2
    ring = np.minimum(radius.astype(int), n_bins)
    num = np.bincount(ring.ravel(), (f1 * np.conj(f2)).real.ravel(), n_bins + 1)
    p1 = np.bincount(ring.ravel(), (np.abs(f1) ** 2).ravel(), n_bins + 1)
    p2 = np.bincount(ring.ravel(), (np.abs(f2) ** 2).ravel(), n_bins + 1)
    frc = num / np.sqrt(p1 * p2 + 1e-30)
    # rings where either image itself has (numerically) no power carry no correlation; judged
    # before the window, whose leakage fills a band-limited image's empty rings with copies
    # of its in-band structure (FRC 1 beyond the band limit for two noise-free images)
    empty = _empty_rings(img1, ring, n_bins) | _empty_rings(img2, ring, n_bins)
    frc[empty] = 0.0
    freq = np.arange(n_bins + 1) / (min(h, w) * pixel_nm)
    return freq[:n_bins], frc[:n_bins]


def frc_resolution_nm(
    img1: np.ndarray, img2: np.ndarray, pixel_nm: float, threshold: float = 1 / 7
) -> float:
    """Resolution at the first (interpolated) crossing of ``threshold``; smoothed over 3 rings."""
    freq, frc = frc_curve(img1, img2, pixel_nm)
    smooth = ndimage.uniform_filter1d(frc, 3)
    start = 3  # skip the lowest rings (window and DC)
    below = np.nonzero(smooth[start:] < threshold)[0]
    if below.size == 0:
        return float(1.0 / freq[-1])
    i = below[0] + start
    f0, f1, v0, v1 = freq[i - 1], freq[i], smooth[i - 1], smooth[i]
    f_cross = f0 + (v0 - threshold) * (f1 - f0) / (v0 - v1) if v0 > threshold else f1
    return float(1.0 / f_cross)


def _decorrelation_peak(
    spectrum: np.ndarray, norm: np.ndarray, ring: np.ndarray, radii: np.ndarray
) -> tuple[float, float]:
    """Position and height of the peak of d(r) (Descloux et al. 2019).

    ``ring`` holds, per Fourier pixel, the index of the first radius whose disc contains it,
    so the masked sums for all radii are cumulative sums of per-ring sums.
    """
    n = len(radii) + 1
    cross = np.bincount(ring.ravel(), (spectrum * np.conj(norm)).real.ravel(), n)[:-1]
    norm_power = np.bincount(ring.ravel(), (np.abs(norm) ** 2).ravel(), n)[:-1]
    total = float((np.abs(spectrum) ** 2).sum())
    d = np.cumsum(cross) / np.maximum(np.sqrt(total * np.cumsum(norm_power)), 1e-30)
    i = int(np.argmax(np.round(d, 6)))
    return float(radii[i]), float(d[i])


def decorrelation_resolution_nm(
    img: np.ndarray, pixel_nm: float, n_radii: int = 50, n_filters: int = 10
) -> float:
    """Single-image resolution by image decorrelation analysis (Descloux, Nat. Methods 2019).

    The normalised spectrum is correlated with the image through circular masks of growing
    radius; the peak position of that curve, maximised over a series of high-pass filtered
    versions of the image, is the highest frequency with signal above noise.
    """
    image = _prepare(img)
    h, w = image.shape
    fy = np.fft.fftfreq(h)[:, None] * 2  # normalised: 1 = Nyquist
    fx = np.fft.fftfreq(w)[None, :] * 2
    radius = np.hypot(fy, fx)
    radii = np.linspace(0.02, 1.0, n_radii)
    radius = np.searchsorted(radii, radius)  # ring index (n_radii: outside every disc)
    spectrum = sfft.fft2(image, workers=FFT_WORKERS)
    norm = spectrum / np.maximum(np.abs(spectrum), 1e-30)
    best = 0.0
    r0, a0 = _decorrelation_peak(spectrum, norm, radius, radii)
    if a0 > 0.05:
        best = r0
    sigmas = np.exp(np.linspace(np.log(0.15), np.log(max(h, w) / 4.0), n_filters))
    f2 = (fy / 2) ** 2 + (fx / 2) ** 2  # cycles/pixel, squared
    for sigma in sigmas:  # high-pass: image minus its Gaussian blur, in Fourier space
        spec_g = spectrum * (1.0 - np.exp(-2 * np.pi**2 * sigma**2 * f2))
        r, a = _decorrelation_peak(spec_g, norm, radius, radii)
        if a > 0.05 and r < 0.999:
            best = max(best, r)
    if best <= 0:
        return float("inf")
    return float(2 * pixel_nm / best)
