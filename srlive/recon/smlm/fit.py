"""Maximum-likelihood fitting of many spots at once, with Cramér-Rao bounds.

Counts of an sCMOS pixel are photoelectrons (Poisson) plus Gaussian read noise of variance
``v``; adding ``v`` to data and model makes them approximately Poisson with mean ``μ + v``
(Huang et al., Nat. Methods 2013), which keeps the Poisson likelihood and its Fisher
information ``Σ ∂μ ∂μᵀ / (μ + v)``. Each spot is fitted by Levenberg-Marquardt on the Poisson
negative log-likelihood (Laurence & Chromy, Nat. Methods 2010; the curvature matrix
``Σ d/μ² ∂μ ∂μᵀ``, as Gpufit uses), every spot with its own damping, all spots of a batch in
one set of tensor operations (torch: a GPU when one is given). The inverse Fisher information
at the estimate gives each parameter's Cramér-Rao bound.

float32 arithmetic is enough (positions agree with float64 to ~0.001 px) because the
damped normal equations are solved and the Fisher matrix inverted after Jacobi scaling
(unit diagonal: photons of ~1e3 and positions of ~1 pixel alike), and the loss compared
between steps is the deviance, computed from the ratio data/model, which stays near the
number of pixels instead of summing terms of ~1e4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from srlive.recon.smlm.gauss import GaussModel

LAMBDA_START = 1e-3
LAMBDA_MAX = 1e8
LOSS_RESOLUTION = 1e-4  # deviance changes below this are rounding (float32: ~1e-5 at ~50)


@dataclass(frozen=True)
class FitResult:
    """Per spot: parameters, their Cramér-Rao standard deviations, fit quality."""

    theta: np.ndarray  # (n, P)
    crlb_sd: np.ndarray  # (n, P); NaN where the Fisher matrix is singular
    log_likelihood_ratio: np.ndarray  # (n,) 2·(L_saturated − L_fit), ~ χ² with K²−P dof
    iterations: np.ndarray  # (n,)
    converged: np.ndarray  # (n,) bool


def initial_theta(boxes: torch.Tensor, model: GaussModel) -> torch.Tensor:
    """Starting values: background from the box's border, photons above it, the centroid."""
    k = boxes.shape[1]
    border = torch.cat([boxes[:, 0], boxes[:, -1], boxes[:, 1:-1, 0], boxes[:, 1:-1, -1]], dim=1)
    b = torch.clamp(border.median(dim=1).values, min=0.1)
    signal = torch.clamp(boxes - b[:, None, None], min=0)
    total = torch.clamp(signal.sum(dim=(1, 2)), min=1.0)
    idx = torch.arange(k, dtype=boxes.dtype, device=boxes.device)
    y = (signal.sum(dim=2) * idx).sum(dim=1) / total
    x = (signal.sum(dim=1) * idx).sum(dim=1) / total
    centre = torch.full_like(x, (k - 1) / 2)
    empty = signal.sum(dim=(1, 2)) <= 0
    x, y = torch.where(empty, centre, x), torch.where(empty, centre, y)
    columns = [x, y, total, b]
    s = torch.full_like(x, model.sigma_px)
    if model.model == "free":
        columns.append(s)
    elif model.model == "elliptic":
        columns += [s, s.clone()]
    elif model.model == "astigmatic":
        columns.append(torch.zeros_like(x))
    return torch.stack(columns, dim=1)


def _deviance(mu: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Σ μ − d + d·ln(d/μ) per spot: the Poisson negative log-likelihood minus that of the
    data themselves (half the deviance). Small near the optimum (about the number of
    pixels) and computed from the ratio d/μ, so float32 still tells a better fit from a
    worse one."""
    return (mu - data + torch.xlogy(data, data / mu)).sum(dim=(1, 2))


def fit_boxes(
    boxes: np.ndarray,
    model: GaussModel,
    read_variance: float | np.ndarray = 0.0,
    max_iterations: int = 50,
    tolerance: float = 1e-3,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    start: np.ndarray | None = None,
) -> FitResult:
    """Fit ``model`` to every box ``(n, K, K)`` of photoelectrons.

    ``read_variance`` (e⁻², a scalar or a (K, K) map) is the read noise's variance; ``start``
    optional starting parameters ``(n, P)``. A spot converges when its accepted step moves
    no parameter by more than ``tolerance`` (relative for photons and background, pixels
    for positions and widths, nm/100 for depth).
    """
    data = torch.as_tensor(np.asarray(boxes), dtype=dtype, device=device)
    n, p = data.shape[0], model.n_parameters
    if n == 0:
        empty = np.zeros((0, p))
        return FitResult(empty, empty, np.zeros(0), np.zeros(0, np.int16), np.zeros(0, bool))
    var = torch.as_tensor(np.asarray(read_variance), dtype=dtype, device=device)
    data_v = torch.clamp(data + var, min=0.0)
    if start is None:
        theta = initial_theta(data, model)
    else:
        theta = torch.as_tensor(np.asarray(start), dtype=dtype, device=device)
    scale = torch.ones(p, dtype=dtype, device=device)
    if model.model == "astigmatic":
        scale[4] = 100.0  # depth steps in nm: 1 nm ~ 0.01 px
    lam = torch.full((n,), LAMBDA_START, dtype=dtype, device=device)
    iterations = torch.zeros(n, dtype=torch.int16, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    mu, _ = model.evaluate(theta, jacobian=False)
    loss = _deviance(mu + var, data_v)
    eye = torch.eye(p, dtype=dtype, device=device)
    for _ in range(max_iterations):
        active = torch.nonzero(~done).flatten()
        if active.numel() == 0:
            break
        th, lm, d = theta[active], lam[active], data_v[active]
        m, j = model.jacobian(th)
        mv = m + var
        ratio = d / mv
        grad = _contract(j, 1 - ratio)
        curv = _gram(j, ratio / mv)
        # Jacobi-scaled: unit diagonal, so photons (~1e3) and pixels (~1) solve alike
        scaling = torch.rsqrt(torch.clamp(torch.diagonal(curv, dim1=1, dim2=2), min=1e-30))
        scaled = curv * scaling[:, :, None] * scaling[:, None, :]
        damped = scaled + (lm[:, None, None] + 1e-9) * eye
        step = -torch.linalg.solve(damped, (grad * scaling).unsqueeze(-1)).squeeze(-1) * scaling
        trial = model.bounds(th + step)
        trial_mu, _ = model.evaluate(trial, jacobian=False)
        trial_loss = _deviance(trial_mu + var, d)
        loss_before = loss[active]
        better = torch.isfinite(trial_loss) & (trial_loss <= loss_before)
        moved = torch.abs(trial - th) / scale
        moved[:, 2:4] = moved[:, 2:4] / torch.clamp(torch.abs(th[:, 2:4]), min=1.0)
        small = moved.max(dim=1).values < tolerance
        theta[active] = torch.where(better[:, None], trial, th)
        loss[active] = torch.where(better, trial_loss, loss[active])
        lam[active] = torch.where(better, lm / 10, lm * 10)
        iterations[active] += 1
        # small steps end a fit, unless only the damping made them small; a step that
        # changes the loss by less than its rounding is as good as accepted
        flat = torch.abs(trial_loss - loss_before) <= LOSS_RESOLUTION
        done[active] = (small & (better | (lm < 1) | flat)) | (lam[active] > LAMBDA_MAX)
    mu, jac = model.jacobian(theta)
    mv = mu + var
    fisher = _gram(jac, 1 / mv)
    crlb = _inverse_diagonal(fisher)
    llr = 2 * _deviance(mv, data_v)
    converged = done & (lam <= LAMBDA_MAX)
    return FitResult(
        theta.cpu().numpy(),
        crlb.cpu().numpy(),
        llr.cpu().numpy(),
        iterations.cpu().numpy(),
        converged.cpu().numpy(),
    )


def _contract(jac: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ_ij J[n, p, i, j] · w[n, i, j] → (n, P)."""
    return torch.bmm(jac.flatten(2), weight.flatten(1).unsqueeze(-1)).squeeze(-1)


def _gram(jac: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Σ_ij J[n, p, i, j] · J[n, q, i, j] · w[n, i, j] → (n, P, P)."""
    flat = jac.flatten(2)
    return torch.bmm(flat * weight.flatten(1).unsqueeze(1), flat.transpose(1, 2))


def _inverse_diagonal(fisher: torch.Tensor) -> torch.Tensor:
    """sqrt(diag(F⁻¹)) per spot; NaN where F is singular (inverted Jacobi-scaled)."""
    scaling = torch.rsqrt(torch.clamp(torch.diagonal(fisher, dim1=1, dim2=2), min=1e-30))
    inverse, info = torch.linalg.inv_ex(fisher * scaling[:, :, None] * scaling[:, None, :])
    diag = torch.diagonal(inverse, dim1=1, dim2=2) * scaling**2
    ok = (info == 0)[:, None] & (diag > 0)
    return torch.where(ok, torch.sqrt(torch.clamp(diag, min=0)), torch.full_like(diag, torch.nan))


def fit_boxes_astigmatic(
    boxes: np.ndarray, model: GaussModel, read_variance: float, starts: int = 3, **options
) -> FitResult:
    """The astigmatic fit from ``starts`` depths across the calibrated range, best kept.

    The likelihood in depth can have a second minimum on the far side of focus; starting
    from several depths and keeping each spot's best fit avoids it.
    """
    cal = model.astigmatism()
    depths = np.linspace(cal.z_min_nm, cal.z_max_nm, starts + 2)[1:-1]
    first = initial_theta(torch.as_tensor(np.asarray(boxes), dtype=torch.float64), model).numpy()
    best: FitResult | None = None
    for depth in depths:
        start = first.copy()
        start[:, 4] = depth
        fit = fit_boxes(boxes, model, read_variance, start=start, **options)
        if best is None:
            best = fit
            continue
        score = np.where(fit.converged, fit.log_likelihood_ratio, np.inf)
        take = score < np.where(best.converged, best.log_likelihood_ratio, np.inf)
        best = _pick(take, fit, best)
    assert best is not None  # at least one start
    return best


def _pick(take: np.ndarray, new: FitResult, old: FitResult) -> FitResult:
    """Per spot, ``new``'s fit where ``take``, else ``old``'s."""
    fields = ("theta", "crlb_sd", "log_likelihood_ratio", "iterations", "converged")
    picked = {}
    for name in fields:
        a, b = getattr(new, name), getattr(old, name)
        picked[name] = np.where(take[:, None] if a.ndim == 2 else take, a, b)
    return FitResult(**picked)
