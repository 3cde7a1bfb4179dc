"""The Cramér-Rao bound of an ideal localisation, for comparing estimators with the limit.

For an emitter of ``photons`` detected photoelectrons on ``background`` photoelectrons per
pixel, imaged as a pixel-integrated Gaussian of width ``sigma_nm`` on an sCMOS camera with
``read_noise_e``, the Fisher information of (x, y, photons, background) over a ``box × box``
pixel box centred on it gives the smallest variance any unbiased estimator can reach
(Smith et al. 2010; Huang et al. 2013 for the read noise). The bound depends a little on
where in its pixel the emitter sits; ``subpixel`` (in [0, 1)², default the pixel centre)
says where.
"""

from __future__ import annotations

import numpy as np
import torch

from srlive.recon.smlm.fit import _gram, _inverse_diagonal
from srlive.recon.smlm.gauss import GaussModel


def lateral_crlb_nm(
    photons: np.ndarray,
    background: np.ndarray,
    sigma_nm: float,
    pixel_nm: float,
    read_noise_e: float = 0.0,
    box: int = 7,
    subpixel: np.ndarray | None = None,
) -> np.ndarray:
    """sqrt(CRLB_x + CRLB_y) (nm) per emitter, the lateral bound an RMSE is compared with."""
    photons = np.atleast_1d(np.asarray(photons, np.float64))
    background = np.broadcast_to(np.asarray(background, np.float64), photons.shape)
    centre = (box - 1) / 2
    offset = np.zeros((len(photons), 2)) if subpixel is None else np.asarray(subpixel) - 0.5
    theta = np.stack(
        [centre + offset[:, 1], centre + offset[:, 0], photons, np.maximum(background, 1e-3)],
        axis=1,
    )
    model = GaussModel("fixed", box, sigma_nm / pixel_nm, pixel_nm)
    mu, jac = model.jacobian(torch.as_tensor(theta))
    sd = _inverse_diagonal(_gram(jac, 1 / (mu + read_noise_e**2))).numpy()
    return np.sqrt(sd[:, 0] ** 2 + sd[:, 1] ** 2) * pixel_nm
