"""eSRRF and SOFI on synthetic blinking bursts (numpy-made: Gaussian PSF, Poisson noise)."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
from scipy import ndimage, optimize

from srlive.recon.fluctuation import SweepResult, esrrf, sofi, sweep_esrrf
from srlive.recon.fluctuation.esrrf import (
    _corners_to_half_grid,
    esrrf_frames,
    magnify,
    radial_gradient_convergence,
)
from srlive.recon.fluctuation.sweep import GRID_LIMIT_FRACTION, normalised_resolution

# the package exports the function esrrf, which hides its module of the same name
esrrf_module = importlib.import_module("srlive.recon.fluctuation.esrrf")
SIGMA = 1.3  # PSF sigma, camera pixels (FWHM 3.06 px)


def blinking_burst(
    points: list[tuple[float, float]],
    shape: tuple[int, int],
    frames: int,
    rho: float | tuple[float, ...] = 0.3,
    eps: float | tuple[float, ...] = 1000.0,
    background: float = 10.0,
    seed: int = 0,
    persistence: float = 0.0,
) -> np.ndarray:
    """Emitters blinking on/off (on-fraction rho; each frame independent, or a Markov chain
    that keeps its state with probability ``persistence``), Gaussian PSF, Poisson noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    psf = np.array([np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * SIGMA**2)) for y, x in points])
    rho = np.broadcast_to(np.asarray(rho, float), (len(points),))
    eps = np.broadcast_to(np.asarray(eps, float), (len(points),))
    on = rng.random((frames, len(points))) < rho
    for t in range(1, frames):  # Markov: keep the previous state with probability persistence
        keep = rng.random(len(points)) < persistence
        on[t] = np.where(keep, on[t - 1], on[t])
    image = np.einsum("tk,k,kij->tij", on.astype(float), eps, psf) + background
    return rng.poisson(image).astype(np.float32)


def dip(profile: np.ndarray) -> float:
    """Lowest value between the two halves' maxima over the smaller maximum (1: no dip)."""
    c = len(profile) // 2
    a, b = int(np.argmax(profile[:c])), c + int(np.argmax(profile[c:]))
    return float(profile[a : b + 1].min() / min(profile[a], profile[b]))


def gaussian_sigma(image: np.ndarray) -> float:
    """Sigma of a 2-D Gaussian + constant fitted to an image."""
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]

    def model(_, a, y, x, s, c):
        return (a * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s * s)) + c).ravel()

    y0, x0 = np.unravel_index(np.argmax(image), image.shape)
    p0 = (image.max() - np.median(image), y0, x0, 1.5, np.median(image))
    popt, _ = optimize.curve_fit(model, None, image.ravel().astype(float), p0=p0)
    return abs(float(popt[3]))


# --- eSRRF ----------------------------------------------------------------------------------


def test_esrrf_resolves_two_points_that_widefield_does_not():
    sep, cy, cx, m = 2.4, 11.5, 11.3, 5  # 0.78 PSF FWHM, below the Sparrow limit (2 sigma)
    burst = blinking_burst([(cy, cx - sep / 2), (cy, cx + sep / 2)], (24, 24), 200, seed=1)
    wide = ndimage.zoom(burst.mean(0).astype(float), 10, order=3)  # fine widefield profile
    row = wide[round(cy * 10 + 4.5), int((cx - sep) * 10) : int((cx + sep) * 10)]
    assert dip(row) > 0.98  # widefield: one peak
    image = esrrf(burst, m, radius=1.5, sensitivity=1)
    fine_row = round((cy + 0.5) * m - 0.5)
    line = image[fine_row, int((cx - sep) * m) : int((cx + sep) * m) + 1]
    assert dip(line) < 0.8  # eSRRF: two peaks


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_esrrf_shape_and_dtype(m):
    burst = blinking_burst([(8.2, 9.7)], (17, 19), 12)
    image = esrrf(burst, magnification=m)
    assert image.shape == (17 * m, 19 * m)
    assert image.dtype == np.float32
    assert np.isfinite(image).all()


def test_esrrf_is_registered_with_the_camera_grid():
    y, x, m = 10.3, 12.6, 5
    image = esrrf(blinking_burst([(y, x)], (22, 25), 30, seed=2), m, macro_pixel_correction=False)
    iy, ix = np.unravel_index(np.argmax(image), image.shape)
    assert abs((iy + 0.5) / m - 0.5 - y) <= 1 / m
    assert abs((ix + 0.5) / m - 0.5 - x) <= 1 / m


def test_magnify_and_half_grid_are_exact_on_linear_ramps():
    h, w, m = 9, 11, 5
    ramp = np.add.outer(np.arange(h), 2.0 * np.arange(w)).astype(np.float32)[None]
    fine = magnify(ramp, m)[0]
    coords = lambda n: (np.arange(n * m) + 0.5) / m - 0.5  # noqa: E731
    expected = np.add.outer(coords(h), 2 * coords(w))
    inner = (slice(2 * m, -2 * m), slice(2 * m, -2 * m))
    np.testing.assert_allclose(fine[inner], expected[inner], atol=1e-4)
    corners = np.arange(10, dtype=np.float32) + 0.5  # values = positions of the corners
    half = _corners_to_half_grid(corners[None], 1)[0]
    np.testing.assert_allclose(half[4:-4], np.arange(4, 18) / 2, atol=1e-6)  # sample a at a/2


def _rgc_direct(frame: np.ndarray, m: int, radius: float, pad: int = 4) -> np.ndarray:
    """The RGC definition evaluated fine pixel by fine pixel on the half-pixel gradients."""
    f = np.pad(frame.astype(np.float64), pad, "edge")
    gx = 0.5 * ((f[:-1, 1:] - f[:-1, :-1]) + (f[1:, 1:] - f[1:, :-1]))
    gy = 0.5 * ((f[1:, :-1] - f[:-1, :-1]) + (f[1:, 1:] - f[:-1, 1:]))
    gx = _corners_to_half_grid(_corners_to_half_grid(gx[None], 1), 2)[0].astype(float)
    gy = _corners_to_half_grid(_corners_to_half_grid(gy[None], 1), 2)[0].astype(float)
    vy, vx = np.mgrid[: gx.shape[0], : gx.shape[1]] / 2.0
    sigma = radius / 2.355
    out = np.zeros((frame.shape[0] * m, frame.shape[1] * m))
    for i, j in itertools.product(range(out.shape[0]), range(out.shape[1])):
        dy = vy - ((i + 0.5) / m - 0.5 + pad)
        dx = vx - ((j + 0.5) / m - 0.5 + pad)
        d = np.hypot(dx, dy)
        inside = (d > 0) & (d <= 2 * sigma + 1)
        weight = (d[inside] * np.exp(-(d[inside] ** 2) / (2 * sigma**2))) ** 4
        g, ddx, ddy = np.hypot(gx, gy)[inside], dx[inside], dy[inside]
        toward = gx[inside] * ddx + gy[inside] * ddy < 0
        with np.errstate(invalid="ignore", divide="ignore"):
            term = 1 - np.abs(gx[inside] * ddy - gy[inside] * ddx) / (g * d[inside])
        out[i, j] = np.sum(np.where(toward & (g > 0), term, 0) * weight) / weight.sum()
    return out


def test_rgc_matches_its_definition():
    rng = np.random.default_rng(5)
    frame = ndimage.gaussian_filter(rng.poisson(50, (7, 8)).astype(float), 1.0) * 10
    for m, radius in ((3, 1.5), (2, 1.0)):
        fast = radial_gradient_convergence(frame[None].astype(np.float32), m, radius, 1.0)[0]
        direct = _rgc_direct(frame, m, radius)
        assert direct.max() > 0.3
        np.testing.assert_allclose(fast, direct, atol=3e-3)  # 1024 direction bins, 0.2% weights


def test_esrrf_temporal_modes():
    points = [(9.0, 8.0), (9.5, 19.0)]
    burst = blinking_burst(points, (20, 28), 80, rho=0.4, seed=3, persistence=0.8)
    avg = esrrf(burst, 3, temporal="AVG")
    var = esrrf(burst, 3, temporal="VAR")
    tac = esrrf(burst, 3, temporal="TAC2")
    assert (var >= 0).all()
    assert not np.allclose(var / var.max(), avg / avg.max(), atol=0.05)
    assert not np.allclose(tac / tac.max(), avg / avg.max(), atol=0.05)
    for y, x in points:  # correlated blinking: positive lag-1 cumulant at the emitters
        at = tac[int((y + 0.5) * 3 - 0.5), int((x + 0.5) * 3 - 0.5)]
        assert at > 0.3 * tac.max()
    assert tac.max() > 20 * abs(np.median(tac))


def test_esrrf_chunks_and_workers_give_the_single_pass_result(monkeypatch):
    burst = blinking_burst([(7.0, 8.0)], (15, 16), 21, seed=4, persistence=0.5)  # > _FLUSH
    frames = esrrf_frames(burst, 2, 1.5, 2.0).astype(np.float64)
    expected = {
        "AVG": frames.mean(0),
        "VAR": frames.var(0),
        "TAC2": np.mean((frames[:-1] - frames.mean(0)) * (frames[1:] - frames.mean(0)), 0),
    }
    monkeypatch.setattr(esrrf_module, "_CHUNK_BYTES", 1)  # one frame per chunk
    monkeypatch.setattr(esrrf_module, "_workers", lambda: 3)  # 3 frame ranges
    for mode, value in expected.items():
        got = esrrf(burst, 2, 1.5, 2.0, mode, macro_pixel_correction=False)
        np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-4 * np.abs(value).max())


def test_macro_pixel_correction_removes_the_m_pattern_of_a_flat_field():
    m = 5
    burst = np.random.default_rng(6).poisson(200, (20, 32, 32)).astype(np.float32)

    def pattern_spread(image: np.ndarray) -> float:
        means = image.reshape(32, m, 32, m).mean(axis=(0, 2))
        return float(means.std() / means.mean())

    raw = esrrf(burst, m, macro_pixel_correction=False)
    corrected = esrrf(burst, m, macro_pixel_correction=True)
    assert pattern_spread(raw) > 0.02
    assert pattern_spread(corrected) < 1e-4
    assert corrected.mean() == pytest.approx(raw.mean(), rel=1e-3)


def test_esrrf_offset_only_changes_the_intensity_weighting():
    burst = blinking_burst([(8.0, 8.0)], (16, 16), 10, seed=7)
    np.testing.assert_allclose(
        esrrf(burst + 100, 3, offset_adu=100.0), esrrf(burst, 3), rtol=1e-5, atol=1e-3
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"burst": np.zeros((4, 4))}, "frames, height, width"),
        ({"magnification": 2.5}, "magnification"),
        ({"radius": 0.0}, "radius"),
        ({"temporal": "MEAN"}, "temporal"),
        ({"sensitivity": -1}, "sensitivity"),
    ],
)
def test_esrrf_bad_input_is_one_line_error(kwargs, message):
    args = {"burst": np.ones((3, 8, 8))} | kwargs
    with pytest.raises(ValueError, match=message) as err:
        esrrf(**args)
    assert "\n" not in str(err.value)


# --- SOFI -----------------------------------------------------------------------------------


def test_sofi_narrows_the_psf_by_sqrt_order():
    burst = blinking_burst([(12.3, 11.8)], (25, 25), 2000, rho=0.3, seed=8)
    widefield = gaussian_sigma(burst.mean(0))
    assert widefield == pytest.approx(SIGMA, rel=0.05)
    for order in (2, 3, 4):
        ratio = widefield / gaussian_sigma(sofi(burst, order))
        assert ratio == pytest.approx(np.sqrt(order), rel=0.15)


def test_balanced_sofi_is_linear_in_brightness_and_blind_to_on_fraction():
    # same brightness, on-fractions 0.1 and 0.4: raw SOFI weighs them by f_n(rho)
    burst = blinking_burst([(12, 8), (12, 20)], (24, 28), 3000, rho=(0.1, 0.4), seed=9)
    for order in (2, 3, 4):
        raw = sofi(burst, order)
        balanced = sofi(burst, order, balanced=True)
        raw_ratio = raw[12, 8] / raw[12, 20]
        assert abs(np.log(raw_ratio)) > 0.15
        assert balanced[12, 8] / balanced[12, 20] == pytest.approx(1.0, abs=0.05)
    # same on-fraction, brightness 2:1 -> raw order 2 goes as eps², balanced as eps
    burst = blinking_burst([(12, 8), (12, 20)], (24, 28), 3000, eps=(2000, 1000), seed=10)
    raw, balanced = sofi(burst, 2), sofi(burst, 2, balanced=True)
    assert raw[12, 8] / raw[12, 20] == pytest.approx(4.0, rel=0.1)
    assert balanced[12, 8] / balanced[12, 20] == pytest.approx(2.0, rel=0.05)


def test_sofi_offset_has_no_effect():
    burst = blinking_burst([(6.0, 7.0)], (13, 14), 300, seed=11)
    for order, balanced in itertools.product((2, 3, 4), (False, True)):
        base = sofi(burst, order, balanced)
        shifted = sofi(burst, order, balanced, offset_adu=100.0)
        np.testing.assert_allclose(shifted, base, rtol=1e-6, atol=1e-6 * np.abs(base).max())


def test_sofi_shape_dtype_and_errors():
    burst = blinking_burst([(6.0, 7.0)], (13, 14), 20)
    assert sofi(burst).shape == (13, 14)
    assert sofi(burst, 3).dtype == np.float32
    assert (sofi(burst, 4) >= 0).all()
    for kwargs, message in (({"order": 5}, "order"), ({"order": 1}, "order")):
        with pytest.raises(ValueError, match=message):
            sofi(burst, **kwargs)
    with pytest.raises(ValueError, match="frames, height, width"):
        sofi(burst[0])
    with pytest.raises(ValueError, match="at least 5 frames"):
        sofi(burst[:3], 4)


# --- sweep ----------------------------------------------------------------------------------


def test_sweep_scores_every_combination():
    rng = np.random.default_rng(12)
    points = [tuple(p) for p in rng.uniform(4, 28, (12, 2))]
    burst = blinking_burst(points, (32, 32), 40, seed=12)
    result = sweep_esrrf(
        burst, magnifications=(2, 3), radii=(1.0, 1.5), sensitivities=(1, 2), pixel_nm=100.0
    )
    assert isinstance(result, SweepResult)
    combos = {(r.magnification, r.radius, r.sensitivity) for r in result.rows}
    assert combos == set(itertools.product((2, 3), (1.0, 1.5), (1.0, 2.0)))
    assert result.best in result.rows
    assert result.best.qnr == max(r.qnr for r in result.rows)
    for row in result.rows:
        assert 0 < row.resolution_nm < 1000
        assert -1 <= row.fidelity <= 1
        assert 0 <= row.qnr <= 1
    assert len(result.table()) == 8
    assert esrrf(burst, **result.best.params).shape[0] == 32 * result.best.magnification


def test_sweep_with_frc_scores_even_against_odd_frames():
    rng = np.random.default_rng(13)
    points = [tuple(p) for p in rng.uniform(4, 20, (8, 2))]
    burst = blinking_burst(points, (24, 24), 30, seed=13)
    result = sweep_esrrf(burst, (2,), (1.5,), (1, 2), pixel_nm=65.0, resolution="frc")
    assert len(result.rows) == 2
    assert all(
        np.isfinite(r.resolution_nm) and r.resolution_nm >= 2 * 65.0 / 2 for r in result.rows
    )
    with pytest.raises(ValueError, match="resolution"):
        sweep_esrrf(burst, resolution="fsc")


def test_normalised_resolution_logistic():
    assert normalised_resolution(50, (50, 200)) == pytest.approx(0.925)
    assert normalised_resolution(200, (50, 200)) == pytest.approx(0.075)
    assert normalised_resolution(125, (50, 200)) == pytest.approx(0.5)
    assert normalised_resolution(float("inf"), (50, 200)) == 0.0


def test_sweep_does_not_pick_a_resolution_at_the_grid_limit():
    """Decorrelation peaks at the 5x grid's edge for r=1 (41.7 nm on a 20 nm grid, the limit
    being 40 nm); the sweep used to pick that set for its 'resolution'."""
    rng = np.random.default_rng(0)
    points = [tuple(p) for p in rng.uniform(4, 28, (12, 2))]
    burst = blinking_burst(points, (32, 32), 40, seed=0)
    result = sweep_esrrf(burst, (5,), (1.0, 2.0), (1, 4), pixel_nm=100.0)
    limit = 2 * 100.0 / 5 / GRID_LIMIT_FRACTION
    flagged = [r for r in result.rows if r.at_grid_limit]
    assert flagged and all(r.resolution_nm <= limit and r.qnr == 0 for r in flagged)
    assert not result.best.at_grid_limit and result.best.resolution_nm > limit
    assert result.best.qnr == max(r.qnr for r in result.rows) > 0
