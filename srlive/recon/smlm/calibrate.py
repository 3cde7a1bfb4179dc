"""Astigmatic 3D calibration from a z-stack of beads (or single emitters at known depths).

Every frame of the stack is localised with an elliptical Gaussian (σx and σy free); the
widths of all spots against the stack's depths are fitted by the defocus curve of
:class:`srlive.recon.smlm.gauss.AxisWidth` for each axis (scipy's ``curve_fit``). The
calibrated range is where both curves are defined and the pair (σx, σy) still changes with
depth: the depths of the stack, trimmed to where σx − σy is monotone around focus.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import curve_fit

from srlive.recon.smlm.detect import find_candidates
from srlive.recon.smlm.fit import fit_boxes
from srlive.recon.smlm.gauss import WIDEST, AstigmaticCalibration, AxisWidth, GaussModel
from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, _cut_boxes


def _width_curve(z: np.ndarray, s0: float, c: float, d: float, a: float, b: float) -> np.ndarray:
    u = (z - c) / d
    return s0 * np.sqrt(np.clip(1 + u**2 + a * u**3 + b * u**4, 1e-6, None))


def _fit_axis(z: np.ndarray, sigma_nm: np.ndarray) -> AxisWidth:
    """The defocus curve: first without the cubic and quartic terms, then with them."""
    s0, c = float(np.min(sigma_nm)), float(z[np.argmin(sigma_nm)])
    wide = np.abs(z[sigma_nm > np.sqrt(2) * s0] - c)
    d = float(np.min(wide)) if wide.size else float(np.ptp(z)) / 2

    def simple(zz: np.ndarray, s0: float, c: float, d: float) -> np.ndarray:
        return _width_curve(zz, s0, c, d, 0.0, 0.0)

    lower, upper = (1e-3, -np.inf, 1e-3), (np.inf, np.inf, np.inf)
    (s0, c, d), _ = curve_fit(simple, z, sigma_nm, p0=(s0, c, max(d, 1.0)), bounds=(lower, upper))
    full, _ = curve_fit(
        _width_curve,
        z,
        sigma_nm,
        p0=(s0, c, d, 0.0, 0.0),
        bounds=((1e-3, -np.inf, 1e-3, -np.inf, -np.inf), (np.inf,) * 5),
        maxfev=20000,
    )
    s0, c, d, a, b = (float(v) for v in full)
    return AxisWidth(sigma0_nm=s0, c_nm=c, d_nm=d, a=a, b=b)


def _monotone_range(cal_x: AxisWidth, cal_y: AxisWidth, z_lo: float, z_hi: float):
    """The interval around focus (between the two focal lines) where σx − σy is monotone."""
    z = np.linspace(z_lo, z_hi, 2001)
    diff = _width_curve(z, cal_x.sigma0_nm, cal_x.c_nm, cal_x.d_nm, cal_x.a, cal_x.b)
    diff = diff - _width_curve(z, cal_y.sigma0_nm, cal_y.c_nm, cal_y.d_nm, cal_y.a, cal_y.b)
    centre = int(np.argmin(np.abs(z - (cal_x.c_nm + cal_y.c_nm) / 2)))
    sign = np.sign(np.gradient(diff))
    lo = centre
    while lo > 0 and sign[lo - 1] == sign[centre]:
        lo -= 1
    hi = centre
    while hi < len(z) - 1 and sign[hi + 1] == sign[centre]:
        hi += 1
    return float(z[lo]), float(z[hi])


def calibrate_astigmatism(
    stack: np.ndarray,
    z_nm: np.ndarray,
    optics: SMLMOptics,
    camera: SMLMCamera | None = None,
    box: int = 11,
    threshold: float = 6.0,
) -> AstigmaticCalibration:
    """The σx(z), σy(z) calibration from ``stack`` ``(Z, H, W)`` ADU taken at depths ``z_nm``."""
    stack = np.asarray(stack)
    z_nm = np.asarray(z_nm, np.float64)
    if stack.ndim != 3 or len(stack) != len(z_nm) or len(z_nm) < 6:
        raise ValueError("need a (Z, H, W) stack with one depth per frame and at least 6 frames")
    camera = camera or SMLMCamera()
    photons = camera.photoelectrons(stack)
    sigma_px = optics.sigma_nm / optics.pixel_nm
    cands = find_candidates(
        photons, 2 * sigma_px, threshold, camera.read_noise_e**2, min_distance_px=box // 2
    )
    if len(cands) == 0:
        raise ValueError("no bead found in the calibration stack")
    boxes, _, _ = _cut_boxes(photons, cands.row, cands.col, cands.frame, box)
    model = GaussModel("elliptic", box, sigma_px, optics.pixel_nm)
    fit = fit_boxes(boxes, model, camera.read_noise_e**2, max_iterations=100)
    ok = fit.converged & np.isfinite(fit.crlb_sd).all(axis=1)
    z = z_nm[cands.frame][ok]
    sx = fit.theta[ok, 4] * optics.pixel_nm
    sy = fit.theta[ok, 5] * optics.pixel_nm
    if len(z) < 6:
        raise ValueError(f"only {len(z)} beads could be fitted in the calibration stack")
    at_bound = np.isclose(np.maximum(sx, sy), model.sigma_px * WIDEST * optics.pixel_nm)
    z, sx, sy = z[~at_bound], sx[~at_bound], sy[~at_bound]
    cal_x, cal_y = _fit_axis(z, sx), _fit_axis(z, sy)
    lo, hi = _monotone_range(cal_x, cal_y, float(z.min()), float(z.max()))
    return AstigmaticCalibration(x=cal_x, y=cal_y, z_min_nm=lo, z_max_nm=hi)
