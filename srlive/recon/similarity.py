"""Image-quality metrics against a ground truth (pure functions)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def fit_to(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The affine rescaling a·prediction + b that best matches ``target`` (least squares).

    Reconstructions and ground truth live in different intensity units; comparing after this
    fit ("normalised" metrics) judges structure, not calibration.
    """
    p = prediction.astype(np.float64).ravel()
    t = target.astype(np.float64).ravel()
    design = np.stack([p, np.ones_like(p)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, t, rcond=None)
    return (a * prediction + b).astype(np.float64)


def psnr(prediction: np.ndarray, target: np.ndarray, normalise: bool = True) -> float:
    """Peak signal-to-noise ratio (dB) over the target's range."""
    pred = fit_to(prediction, target) if normalise else prediction.astype(np.float64)
    mse = float(np.mean((pred - target) ** 2))
    data_range = float(target.max() - target.min()) or 1.0
    return float(10 * np.log10(data_range**2 / max(mse, 1e-20)))


def ssim(
    prediction: np.ndarray, target: np.ndarray, normalise: bool = True, sigma: float = 1.5
) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window), optionally after fit_to."""
    x = fit_to(prediction, target) if normalise else prediction.astype(np.float64)
    y = target.astype(np.float64)
    data_range = float(y.max() - y.min()) or 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, sigma, truncate=3.5)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    margin = int(3.5 * sigma)
    return float(value[margin:-margin, margin:-margin].mean())
