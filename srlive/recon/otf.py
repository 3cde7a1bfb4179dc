"""The widefield OTF the reconstruction assumes (independent of the simulator)."""

from __future__ import annotations

import numpy as np


def frequency_grid(shape: tuple[int, int], pixel_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """(fy, fx) in cycles/nm on the unshifted fft2 grid, broadcastable."""
    fy = np.fft.fftfreq(shape[0], d=pixel_nm)[:, None]
    fx = np.fft.fftfreq(shape[1], d=pixel_nm)[None, :]
    return fy, fx


def widefield_otf(
    shape: tuple[int, int],
    pixel_nm: float,
    na: float,
    wavelength_nm: float,
    shift: tuple[float, float] = (0.0, 0.0),
    attenuation: float = 1.0,
) -> np.ndarray:
    """Ideal in-focus incoherent OTF, unshifted fft2 layout, evaluated at ``f − shift``.

    ``shift`` = (ky, kx) in cycles/nm. ``attenuation`` < 1 bends the curve down
    (``OTF^(1/attenuation)``-style empirical correction for aberrations); 1 is ideal.
    """
    fy, fx = frequency_grid(shape, pixel_nm)
    scale = 2 * na / wavelength_nm  # float32 from here: the grid is large, the OTF smooth
    rho = np.hypot(
        ((fy - shift[0]) / scale).astype(np.float32), ((fx - shift[1]) / scale).astype(np.float32)
    )
    r = np.clip(rho, 0.0, 1.0)
    otf = (2 / np.pi) * (np.arccos(r) - r * np.sqrt(1 - r * r))
    if attenuation != 1.0:
        otf = otf ** (1.0 / attenuation)
    return otf.astype(np.float32)
