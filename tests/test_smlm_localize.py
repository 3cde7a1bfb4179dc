"""Classical localisation (issue 18 item 2): DoG detection with a noise-model threshold,
batched maximum-likelihood fitting of a pixel-integrated Gaussian with the sCMOS read noise,
Cramér-Rao bounds as uncertainties, astigmatic 3D, drift correction, rendering and scoring.

The frames come from :mod:`simulators.smlm`, whose PSF is a scalar pupil PSF, not the
Gaussian the fit assumes, so the fit is tested against another model of the optics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simulators.camera_model import CameraModel
from simulators.fluctuation_fields import prior_free_emitters
from simulators.smlm import simulate_smlm, uniform_emitters
from simulators.smlm_psf import PSFRenderer, PupilOptics
from srlive.recon.smlm import (
    Localizations,
    LocalizeSettings,
    SMLMCamera,
    SMLMOptics,
    calibrate_astigmatism,
    correct_drift,
    estimate_drift,
    localize,
    match_pairs,
    render,
    score,
)
from srlive.recon.smlm.crlb import lateral_crlb_nm
from srlive.recon.smlm.detect import find_candidates
from srlive.recon.smlm.fit import fit_boxes
from srlive.recon.smlm.gauss import AstigmaticCalibration, AxisWidth, GaussModel

OPTICS = SMLMOptics()  # 65 nm, NA 1.49, 670 nm: the simulator's defaults


def isolated_spots(n: int, photons: float, background: float, seed: int = 0):
    """``n`` frames of 32² with one pupil-PSF emitter each at a random sub-pixel place."""
    rng = np.random.default_rng(seed)
    y, x = 16 + rng.random(n), 16 + rng.random(n)
    renderer = PSFRenderer(PupilOptics())
    expected = renderer.render((32, 32), np.arange(n), n, y, x, np.full(n, photons))
    camera = CameraModel()
    frames = np.stack([camera.expose(im + background, 10.0, rng) for im in expected])
    return frames, y * 65.0, x * 65.0


def test_isolated_emitters_reach_the_cramer_rao_bound_without_bias():
    """Errors of single emitters match their CRLB (normalised errors of unit spread), no
    bias with the sub-pixel position, and the photons are those detected."""
    frames, y, x = isolated_spots(600, 3000.0, 70.0)
    locs = localize(frames, OPTICS)
    assert len(locs) == 600
    f = locs["frame"]
    dx, dy = locs["x_nm"] - x[f], locs["y_nm"] - y[f]
    z = np.concatenate([dx / locs["uncertainty_x_nm"], dy / locs["uncertainty_y_nm"]])
    assert 0.9 < z.std() < 1.15, z.std()
    rmse = np.sqrt(np.mean(dx**2 + dy**2))
    crlb = np.sqrt(np.mean(locs["uncertainty_x_nm"] ** 2 + locs["uncertainty_y_nm"] ** 2))
    assert rmse < 1.15 * crlb
    assert abs(dx.mean()) < 0.5 and abs(dy.mean()) < 0.5
    frac = (x[f] / 65.0) % 1
    for lo in (0.0, 0.5):  # no pixel locking: the same bias on both halves of a pixel
        half = (frac >= lo) & (frac < lo + 0.5)
        assert abs(dx[half].mean()) < 1.0
    detected = 3000.0 * CameraModel().qe
    assert 0.85 < np.median(locs["photons"]) / detected < 1.02
    assert np.median(locs["background"]) == pytest.approx(70.0 * 0.8, rel=0.1)
    # the ideal bound of these emitters (true photons and background, the fitted width)
    ideal = lateral_crlb_nm(
        np.full(len(f), detected),
        70.0 * 0.8,
        float(np.median(locs["sigma_x_nm"])),
        65.0,
        1.6,
        subpixel=np.stack([y[f], x[f]], 1) / 65.0 % 1,
    )
    ideal_rms = np.sqrt(np.mean(ideal**2))
    assert ideal_rms == pytest.approx(crlb, rel=0.1)
    # a bound for a Gaussian PSF: the sharper pupil PSF can carry slightly more information
    assert 0.9 * ideal_rms < rmse < 1.2 * ideal_rms


def test_noise_alone_gives_almost_no_localisation():
    """The threshold comes from the noise model: pure background is not localised."""
    rng = np.random.default_rng(1)
    camera = CameraModel()
    frames = np.stack([camera.expose(np.full((64, 64), 60.0), 10.0, rng) for _ in range(100)])
    locs = localize(frames, OPTICS)
    assert len(locs) / 100 < 0.05
    loose = find_candidates(SMLMCamera().photoelectrons(frames), 1.4, 3.0, 2.56)
    assert len(loose) > 10 * max(len(locs), 1)  # a lower threshold does find noise


@pytest.fixture(scope="module")
def low_density():
    em = prior_free_emitters(("segments", "rings"), (64 * 65.0, 64 * 65.0), seed=2)
    return simulate_smlm(em, 300, seed=3)


def test_low_density_burst_is_found_and_placed(low_density):
    burst = low_density
    assert 0.05 < burst.density_per_um2() < 0.5
    locs = localize(burst.frames, OPTICS)
    result = score(locs.columns, burst.truth)
    assert result.precision > 0.9
    seen = burst.truth["photons"] * 0.8 > 500  # events bright enough to be seen
    bright = score(locs.columns, {k: v[seen] for k, v in burst.truth.items()})
    assert bright.recall > 0.85, bright
    assert result.rmse_lateral_nm < 25
    # the background varies smoothly (±20 % over ~2 µm); a flat-background fit leans a few nm
    # towards the brighter side (flat background: no bias, see the isolated-emitter test)
    assert abs(result.bias_x_nm) < 4 and abs(result.bias_y_nm) < 4
    fi, ti = match_pairs(locs.columns, burst.truth)
    err = np.hypot(
        locs["x_nm"][fi] - burst.truth["x_nm"][ti], locs["y_nm"][fi] - burst.truth["y_nm"][ti]
    )
    sigma = locs["uncertainty_nm"][fi]
    assert np.median(err / sigma) < 2.0  # uncertainties follow the errors' scale


def test_batched_fit_does_not_depend_on_its_batch():
    frames, _, _ = isolated_spots(20, 2000.0, 50.0, seed=4)
    photons = SMLMCamera().photoelectrons(frames)[:, 13:20, 13:20]
    model = GaussModel("free", 7, OPTICS.sigma_nm / 65.0, 65.0)
    together = fit_boxes(photons, model, 2.56)
    alone = fit_boxes(photons[5:6], model, 2.56)
    assert np.allclose(together.theta[5], alone.theta[0], atol=1e-6)
    assert np.allclose(together.crlb_sd[5], alone.crlb_sd[0], rtol=1e-6)


@pytest.mark.parametrize("name", ["fixed", "free", "elliptic", "astigmatic"])
def test_model_jacobian_matches_finite_differences(name):
    cal = AstigmaticCalibration(
        x=AxisWidth(sigma0_nm=90, c_nm=-150, d_nm=300, a=0.1, b=0.02),
        y=AxisWidth(sigma0_nm=95, c_nm=160, d_nm=320, a=-0.1, b=0.01),
    )
    model = GaussModel(name, 9, 1.4, 65.0, cal if name == "astigmatic" else None)
    full = [4.2, 3.7, 1500.0, 30.0, 1.3 if name != "astigmatic" else 80.0, 1.6]
    theta = torch.tensor([full[: model.n_parameters]], dtype=torch.float64)
    mu, jac = model.evaluate(theta)
    for p in range(model.n_parameters):
        step = torch.zeros_like(theta)
        step[0, p] = 1e-6 * max(1.0, abs(float(theta[0, p])))
        numeric = (model.evaluate(theta + step, False)[0] - mu) / step[0, p]
        assert torch.allclose(numeric, jac[:, p], rtol=1e-4, atol=1e-6 * float(mu.max()))


def test_astigmatic_calibration_and_3d_localisation():
    """Calibrated on a bead z-stack of the astigmatic pupil PSF, depths come back."""
    optics = PupilOptics(astigmatism_nm=80.0, z_range_nm=700.0)
    renderer = PSFRenderer(optics)
    rng = np.random.default_rng(5)
    z = np.arange(-600, 601, 25.0)
    grid = np.arange(3) * 20 + 12.4
    ys, xs = (a.ravel() for a in np.meshgrid(grid, grid + 0.3, indexing="ij"))
    frame = np.repeat(np.arange(len(z)), 9)
    stack = renderer.render(
        (64, 64),
        frame,
        len(z),
        np.tile(ys, len(z)),
        np.tile(xs, len(z)),
        np.full(len(frame), 20000.0),
        np.repeat(z, 9),
    )
    camera = CameraModel()
    stack = np.stack([camera.expose(im + 50, 10.0, rng) for im in stack])
    cal = calibrate_astigmatism(stack, z, OPTICS)
    assert cal.z_min_nm < -200 and cal.z_max_nm > 200
    assert cal.x.c_nm * cal.y.c_nm < 0  # the two focal lines on either side of focus
    em = uniform_emitters(600, (64 * 65.0, 64 * 65.0), seed=6)
    depth = np.random.default_rng(7).uniform(-200, 200, len(em))
    burst = simulate_smlm(em, 200, z_nm=depth, optics=optics, seed=8)
    settings = LocalizeSettings(model="astigmatic", astigmatism=cal, box=9)
    locs = localize(burst.frames, OPTICS, settings=settings)
    assert locs.has_z
    result = score(locs.columns, burst.truth)
    assert result.jaccard > 0.4, result
    assert result.rmse_z_nm < 90, result
    assert np.nanmedian(locs["uncertainty_z_nm"]) < 60


def test_drift_is_found_by_redundant_cross_correlation():
    em = prior_free_emitters(("segments", "rings"), (64 * 65.0, 64 * 65.0), seed=9, density=3)
    t = np.arange(1200)
    drift = np.stack([30 * np.sin(t / 400), 150 * t / len(t)], axis=1)
    burst = simulate_smlm(em, len(t), activation_mw=1.0, seed=10, drift_nm=drift)
    locs = localize(burst.frames, OPTICS)
    found = estimate_drift(locs, 6)
    assert found.pairs_used >= 10
    err_x = found.x_nm - drift[:, 1]
    err_y = found.y_nm - drift[:, 0]
    err_x -= err_x.mean()  # the drift is relative to the first block: up to a constant
    err_y -= err_y.mean()
    assert np.sqrt(np.mean(err_x**2 + err_y**2)) < 10
    fixed = correct_drift(locs, found)
    truth = burst.truth
    sample = {
        "frame": truth["frame"],
        "x_nm": truth["x_nm"] - truth["drift_x_nm"],
        "y_nm": truth["y_nm"] - truth["drift_y_nm"],
    }
    shift = {
        "x_nm": found.x_nm.mean() - drift[:, 1].mean(),
        "y_nm": found.y_nm.mean() - drift[:, 0].mean(),
    }
    aligned = fixed.replace(x_nm=fixed["x_nm"] + shift["x_nm"], y_nm=fixed["y_nm"] + shift["y_nm"])
    assert score(aligned.columns, sample).jaccard > score(locs.columns, sample).jaccard + 0.2


def test_rendering_keeps_every_localisation():
    locs = Localizations.from_columns(
        {
            "frame": [0, 0, 1],
            "x_nm": [505.0, 1005.0, 1003.0],
            "y_nm": [305.0, 505.0, 502.0],
            "uncertainty_nm": [5.0, 8.0, 30.0],
        },
        65.0,
        (32, 32),
        2,
    )
    hist = render(locs, 10.0, "histogram")
    assert hist.shape == (208, 208) and hist.sum() == 3
    assert hist[30, 50] == 1 and hist[50, 100] == 2
    gauss = render(locs, 10.0)
    assert gauss.sum() == pytest.approx(3.0, abs=1e-3)
    assert np.unravel_index(np.argmax(gauss), gauss.shape) == (30, 50)  # the sharpest one
    fixed = render(locs, 10.0, sigma_nm=20.0)
    assert fixed.sum() == pytest.approx(3.0, abs=1e-3)
    with pytest.raises(ValueError, match="rendering"):
        render(locs, 10.0, "splat")


def test_scoring_pairs_one_to_one_within_the_radius():
    truth = {"frame": np.array([0, 0, 1]), "x_nm": np.array([0.0, 60.0, 0.0]), "y_nm": np.zeros(3)}
    found = {
        "frame": np.array([0, 0, 1, 2]),
        "x_nm": np.array([35.0, 58.0, 70.0, 0.0]),  # 35 nm could pair with both: one-to-one
        "y_nm": np.zeros(4),
    }
    result = score(found, truth)
    assert (result.true_positives, result.false_positives, result.false_negatives) == (2, 2, 1)
    nothing = score({k: v[:0] for k, v in found.items()}, truth)
    assert nothing.jaccard == 0 and nothing.false_negatives == 3
    assert result.jaccard == pytest.approx(2 / 5)
    assert result.rmse_lateral_nm == pytest.approx(np.sqrt((35**2 + 2**2) / 2))


def test_bad_settings_are_one_line_errors():
    from srlive.recon.smlm import localize_settings, smlm_settings

    with pytest.raises(ValueError, match="box must be odd"):
        localize_settings(box=8)
    with pytest.raises(ValueError, match="astigmatic"):
        localize_settings(model="astigmatic")
    with pytest.raises(ValueError, match="render_nm") as err:
        smlm_settings(render_nm=-1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        localize(np.zeros((2, 4, 4), np.uint16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_gpu_fit_matches_cpu():
    frames, _, _ = isolated_spots(50, 2000.0, 50.0, seed=11)
    cpu = localize(frames, OPTICS)
    gpu = localize(frames, OPTICS, settings=LocalizeSettings(device="cuda"))
    assert len(cpu) == len(gpu)
    assert np.allclose(cpu["x_nm"], gpu["x_nm"], atol=1e-3)
