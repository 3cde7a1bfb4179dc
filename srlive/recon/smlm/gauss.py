"""The pixel-integrated Gaussian PSF model of single-emitter fitting, and its derivatives.

An emitter at ``(x, y)`` (pixels, box coordinates: pixel ``k``'s centre at ``k``) with
``N`` photons on a background ``b`` per pixel gives the expected count

    μ_ij = b + N · E_y(i) · E_x(j),
    E_x(j) = ½ [erf((j − x + ½)/(√2 σx)) − erf((j − x − ½)/(√2 σx))]

(Smith et al., Nat. Methods 2010). Parameter vectors ``θ`` by model:

* ``fixed``: (x, y, N, b), σx = σy = the given σ;
* ``free``: (x, y, N, b, σ), one σ for both axes;
* ``elliptic``: (x, y, N, b, σx, σy) (bead calibration of astigmatism);
* ``astigmatic``: (x, y, N, b, z) with σx(z), σy(z) from an :class:`AstigmaticCalibration`.

Everything is batched over spots with torch (CPU or GPU).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

MODELS = ("fixed", "free", "elliptic", "astigmatic")
ModelName = Literal["fixed", "free", "elliptic", "astigmatic"]
N_PARAMETERS = {"fixed": 4, "free": 5, "elliptic": 6, "astigmatic": 5}
WIDEST = 4.0  # fitted widths stay within [0.3, WIDEST] × the starting σ
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


class AxisWidth(BaseModel):
    """PSF width along one axis against depth: σ(z) = σ0·sqrt(1 + u² + A·u³ + B·u⁴),
    u = (z − c)/d (Huang et al., Science 2008). σ0 in nm, z, c and d in nm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sigma0_nm: float = Field(gt=0)
    c_nm: float
    d_nm: float = Field(gt=0)
    a: float = 0.0
    b: float = 0.0

    def sigma_and_slope(
        self, z: torch.Tensor, pixel_nm: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """σ (pixels) and dσ/dz (pixels per nm) at depths ``z`` (nm)."""
        u = (z - self.c_nm) / self.d_nm
        inner = 1 + u**2 + self.a * u**3 + self.b * u**4
        inner = torch.clamp(inner, min=1e-3)
        root = torch.sqrt(inner)
        sigma = self.sigma0_nm / pixel_nm * root
        d_inner = (2 * u + 3 * self.a * u**2 + 4 * self.b * u**3) / self.d_nm
        return sigma, self.sigma0_nm / pixel_nm * d_inner / (2 * root)


class AstigmaticCalibration(BaseModel):
    """How the PSF's widths change with depth under astigmatism, from a bead z-stack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: AxisWidth
    y: AxisWidth
    z_min_nm: float = -600.0
    z_max_nm: float = 600.0

    def widths_nm(self, z_nm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """σx, σy (nm) at depths ``z_nm``."""
        return self.x.sigma_and_slope(z_nm, 1.0)[0], self.y.sigma_and_slope(z_nm, 1.0)[0]


def _edge_terms(
    centre: torch.Tensor, sigma: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """E(k), dE/dcentre, dE/dσ for spots (n,) over pixel centres ``k`` (K,): each (n, K).

    Pixel k spans the edges k − ½ and k + ½: the erf and Gaussian of the K + 1 edges are
    computed once and differenced.
    """
    s = sigma[:, None]
    edges = torch.cat([k - 0.5, k[-1:] + 0.5])[None, :] - centre[:, None]
    cdf = torch.erf(edges / (_SQRT2 * s))
    gauss = torch.exp(-(edges**2) / (2 * s**2)) * (_INV_SQRT2PI / s)
    e = 0.5 * (cdf[:, 1:] - cdf[:, :-1])
    d_centre = gauss[:, :-1] - gauss[:, 1:]
    moment = edges * gauss / s
    d_sigma = moment[:, :-1] - moment[:, 1:]
    return e, d_centre, d_sigma


class GaussModel:
    """The expected counts and their Jacobian for one model over ``box × box`` pixels."""

    def __init__(
        self,
        model: ModelName,
        box: int,
        sigma_px: float,
        pixel_nm: float,
        calibration: AstigmaticCalibration | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown PSF model {model!r} (choose from {', '.join(MODELS)})")
        if model == "astigmatic" and calibration is None:
            raise ValueError("the astigmatic model needs an AstigmaticCalibration")
        self.model = model
        self.box = box
        self.sigma_px = float(sigma_px)
        self.pixel_nm = float(pixel_nm)
        self.calibration = calibration
        self.n_parameters = N_PARAMETERS[model]

    def astigmatism(self) -> AstigmaticCalibration:
        """The astigmatic model's calibration (ValueError for the other models)."""
        if self.calibration is None:
            raise ValueError(f"the {self.model} model has no astigmatism calibration")
        return self.calibration

    def jacobian(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ (n, K, K) and ∂μ/∂θ (n, P, K, K)."""
        mu, jac = self.evaluate(theta)
        assert jac is not None  # asked for
        return mu, jac

    def widths(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """σx, σy (pixels) and their derivatives by the width parameter (σ or z)."""
        ones = torch.ones_like(theta[:, 0])
        if self.model == "fixed":
            s = ones * self.sigma_px
            return s, s, ones * 0, ones * 0
        if self.model == "free":
            return theta[:, 4], theta[:, 4], ones, ones
        if self.model == "elliptic":
            return theta[:, 4], theta[:, 5], ones, ones
        cal = self.astigmatism()
        sx, dsx = cal.x.sigma_and_slope(theta[:, 4], self.pixel_nm)
        sy, dsy = cal.y.sigma_and_slope(theta[:, 4], self.pixel_nm)
        return sx, sy, dsx, dsy

    def evaluate(
        self, theta: torch.Tensor, jacobian: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """μ (n, K, K) and, if asked, ∂μ/∂θ (n, P, K, K)."""
        k = torch.arange(self.box, dtype=theta.dtype, device=theta.device)
        sx, sy, dsx, dsy = self.widths(theta)
        ex, dex, dsex = _edge_terms(theta[:, 0], sx, k)
        ey, dey, dsey = _edge_terms(theta[:, 1], sy, k)
        photons = theta[:, 2][:, None]
        if not jacobian:
            mu = ey[:, :, None] * (photons * ex)[:, None, :]
            return mu.add_(theta[:, 3][:, None, None]), None
        count, size = theta.shape[0], self.box
        # one contiguous block per parameter (writes stay contiguous), seen as (n, P, K, K)
        blocks = theta.new_empty((self.n_parameters, count, size, size))
        torch.mul(ey[:, :, None], (photons * dex)[:, None, :], out=blocks[0])
        torch.mul((photons * dey)[:, :, None], ex[:, None, :], out=blocks[1])
        torch.mul(ey[:, :, None], ex[:, None, :], out=blocks[2])
        blocks[3].fill_(1.0)
        if self.model in ("free", "astigmatic"):
            along_x = photons * dsx[:, None] * dsex
            along_y = photons * dsy[:, None] * dsey
            torch.mul(ey[:, :, None], along_x[:, None, :], out=blocks[4])
            blocks[4].addcmul_(along_y[:, :, None], ex[:, None, :])
        elif self.model == "elliptic":
            torch.mul(ey[:, :, None], (photons * dsex)[:, None, :], out=blocks[4])
            torch.mul((photons * dsey)[:, :, None], ex[:, None, :], out=blocks[5])
        mu = blocks[2] * theta[:, 2][:, None, None]
        return mu.add_(theta[:, 3][:, None, None]), blocks.permute(1, 0, 2, 3)

    def bounds(self, theta: torch.Tensor) -> torch.Tensor:
        """θ moved back inside the physical range (N, b > 0; widths and depth bounded)."""
        theta = theta.clone()
        theta[:, 2] = torch.clamp(theta[:, 2], min=1.0)
        theta[:, 3] = torch.clamp(theta[:, 3], min=1e-3)
        if self.model in ("free", "elliptic"):
            theta[:, 4:] = torch.clamp(theta[:, 4:], 0.3 * self.sigma_px, WIDEST * self.sigma_px)
        elif self.model == "astigmatic":
            cal = self.astigmatism()
            theta[:, 4] = torch.clamp(theta[:, 4], cal.z_min_nm, cal.z_max_nm)
        return theta
