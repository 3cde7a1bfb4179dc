"""Super-resolved images from localisations: a histogram or a sum of Gaussians.

The image covers the camera frame (``Localizations.field_nm``) at ``pixel_nm``; its pixel
``(i, j)`` covers ``[i·s, (i+1)·s) × [j·s, (j+1)·s)`` nm. ``histogram`` counts localisations
per pixel. ``gaussian`` spreads each localisation as a normalised 2D Gaussian integrated over
the pixels, of standard deviation its own lateral uncertainty (or a fixed ``sigma_nm``),
so the image sums to the number of localisations either way.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import erf

from srlive.recon.smlm.table import Localizations

RENDER_KINDS = ("gaussian", "histogram")
MIN_SIGMA_PX = 0.5  # narrower Gaussians are drawn this wide (in render pixels)
KERNEL_VALUES = 20_000_000  # kernel pixels drawn at once


def render_shape(locs: Localizations, pixel_nm: float) -> tuple[int, int]:
    """The rendered image's shape: the camera frame at ``pixel_nm``."""
    if not pixel_nm > 0:
        raise ValueError(f"render pixel must be > 0 nm, got {pixel_nm}")
    h, w = locs.field_nm
    return max(1, int(np.ceil(h / pixel_nm - 1e-9))), max(1, int(np.ceil(w / pixel_nm - 1e-9)))


def _histogram(y: np.ndarray, x: np.ndarray, weight: np.ndarray, shape: tuple[int, int]):
    iy, ix = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = np.bincount(iy[ok] * shape[1] + ix[ok], weight[ok], shape[0] * shape[1])
    return flat.reshape(shape)


def _gaussians(y: np.ndarray, x: np.ndarray, sigma: np.ndarray, shape: tuple[int, int]):
    """Sum of unit pixel-integrated Gaussians (positions and σ in render pixels).

    Drawn in chunks of similar σ (sorted), each on a (8σ+1)² kernel of its widest.
    """
    out = np.zeros(shape[0] * shape[1], np.float64)
    order = np.argsort(sigma, kind="stable")
    s = 0
    while s < len(order):
        n = max(1, KERNEL_VALUES // (2 * int(np.ceil(4 * sigma[order[s]])) + 1) ** 2)
        widest = sigma[order[min(s + n, len(order)) - 1]]
        n = max(1, min(n, KERNEL_VALUES // (2 * int(np.ceil(4 * widest)) + 1) ** 2))
        part = order[s : s + n]
        s += n
        yy, xx, ss = y[part], x[part], sigma[part]
        half = int(np.ceil(4 * ss.max()))
        k = np.arange(-half, half + 1)
        cy, cx = np.floor(yy).astype(np.int64), np.floor(xx).astype(np.int64)
        rows = cy[:, None] + k[None, :]
        cols = cx[:, None] + k[None, :]
        root2s = (np.sqrt(2) * ss)[:, None]
        wy = 0.5 * (erf((rows + 1 - yy[:, None]) / root2s) - erf((rows - yy[:, None]) / root2s))
        wx = 0.5 * (erf((cols + 1 - xx[:, None]) / root2s) - erf((cols - xx[:, None]) / root2s))
        inside = (
            (rows[:, :, None] >= 0)
            & (rows[:, :, None] < shape[0])
            & (cols[:, None, :] >= 0)
            & (cols[:, None, :] < shape[1])
        )
        index = rows[:, :, None] * shape[1] + cols[:, None, :]
        weight = wy[:, :, None] * wx[:, None, :]
        out += np.bincount(index[inside], weight[inside], out.size)
    return out.reshape(shape)


def render(
    locs: Localizations,
    pixel_nm: float,
    kind: Literal["gaussian", "histogram"] = "gaussian",
    sigma_nm: float | None = None,
) -> np.ndarray:
    """The super-resolved image (float32) of ``locs`` at ``pixel_nm``."""
    if kind not in RENDER_KINDS:
        raise ValueError(f"unknown rendering {kind!r} (choose from {', '.join(RENDER_KINDS)})")
    shape = render_shape(locs, pixel_nm)
    y = np.asarray(locs["y_nm"], np.float64) / pixel_nm
    x = np.asarray(locs["x_nm"], np.float64) / pixel_nm
    if kind == "histogram" or len(locs) == 0:
        return _histogram(y, x, np.ones(len(y)), shape).astype(np.float32)
    if sigma_nm is not None:
        sigma = np.full(len(y), sigma_nm / pixel_nm)
    else:
        sigma = np.asarray(locs["uncertainty_nm"], np.float64) / pixel_nm
    sigma = np.clip(np.nan_to_num(sigma, nan=MIN_SIGMA_PX), MIN_SIGMA_PX, None)
    return _gaussians(y, x, sigma, shape).astype(np.float32)
