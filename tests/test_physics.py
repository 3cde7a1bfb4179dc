"""The simulator's physics as pure functions: signal, noise, optics, patterns, bleaching."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.camera_model import CameraModel, bin_to_camera
from simulators.illumination import draw_grating, illumination_from_slm, sim_pattern_set
from simulators.imaging import (
    FringeCache,
    default_sim_patterns,
    expected_from_cache,
    render_expected,
    simulate_sim_stack,
)
from simulators.optics import otf_2d, psf_2d, widefield_fwhm_nm
from simulators.photophysics import (
    bleach_survival,
    blinking_state,
    render_points,
    sample_emitters,
)
from simulators.samples import SAMPLE_KINDS, load_sample_file, make_sample, sample_from_array

CAM = CameraModel()


def test_mean_signal_is_linear_in_power_times_exposure():
    density = make_sample("vesicles", (256, 256), 32.5, seed=1, motion=False).density()
    otf = otf_2d((256, 256), 32.5, 1.49, 510)
    rng = np.random.default_rng(0)
    doses, means = [], []
    for power, exposure in [(1, 5), (2, 10), (5, 10), (10, 20), (20, 20), (40, 25)]:
        scale = power * exposure * 20.0
        photons = render_expected(
            density, default_sim_patterns(fov_nm=(128 * 65, 128 * 65))[0], otf, 2, scale, 32.5
        )
        frame = CAM.expose(photons, exposure, rng).astype(float)
        doses.append(power * exposure)
        means.append(frame.mean() - CAM.offset_adu)
    slope, intercept = np.polyfit(doses, means, 1)
    fit = slope * np.array(doses) + intercept
    r2 = 1 - np.sum((means - fit) ** 2) / np.sum((means - np.mean(means)) ** 2)
    assert r2 > 0.999
    assert abs(intercept) < 0.01 * max(means)


def test_photon_transfer_curve_in_electrons():
    rng = np.random.default_rng(4)
    mean_e, var_e = [], []
    for photons in (5, 20, 80, 300, 1000, 3000):
        flat = np.full((2, 256, 256), photons, np.float32)
        frames = np.stack([CAM.expose(f, 10.0, rng).astype(float) for f in flat])
        diff = frames[0] - frames[1]  # pair difference removes fixed pattern
        mean_e.append((frames.mean() - CAM.offset_adu) * CAM.e_per_adu)
        var_e.append(diff.var() / 2 * CAM.e_per_adu**2)
    slope, _ = np.polyfit(mean_e, var_e, 1)
    assert slope == pytest.approx(1.0, abs=0.05)  # shot noise: variance = mean (electrons)
    # conversion gain from the PTC in ADU: var_adu = mean_adu / gain
    mean_adu = np.array(mean_e) / CAM.e_per_adu
    var_adu = np.array(var_e) / CAM.e_per_adu**2
    assert 1 / np.polyfit(mean_adu, var_adu, 1)[0] == pytest.approx(CAM.e_per_adu, rel=0.05)
    # dark frames: read noise (plus a tiny dark current and ADC quantisation)
    dark = [CAM.expose(np.zeros((256, 256), np.float32), 10.0, rng).astype(float) for _ in "ab"]
    read_var_e = (dark[0] - dark[1]).var() / 2 * CAM.e_per_adu**2
    assert read_var_e == pytest.approx(CAM.read_noise_e**2, rel=0.1)


@pytest.mark.parametrize("lam", [0.03, 0.8, 2.9])
def test_dim_pixel_shot_noise_is_poisson(lam):
    """The inversion sampler used below 3 e- draws the Poisson distribution (chi-square)."""
    from scipy import stats

    from simulators.camera_model import DENSE_INVERSION_STEPS, poisson_by_inversion

    draws = poisson_by_inversion(np.full(400_000, lam, np.float32), np.random.default_rng(7))
    counts = np.bincount(draws.astype(int))
    expected = stats.poisson.pmf(np.arange(counts.size), lam) * draws.size
    keep = expected > 5
    chi2 = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-3
    if lam > 0.5:  # the tail beyond the vectorised CDF terms is reached (and right, above)
        assert draws.max() > DENSE_INVERSION_STEPS + 1


def test_inversion_ends_and_is_right_for_the_largest_uniform():
    """u = 1 - 2^-24 (the largest float32 uniform): the search ends at the exact quantile."""
    from scipy import stats

    from simulators.camera_model import poisson_by_inversion

    class LargestUniform:  # a generator that always draws the top of [0, 1)
        def random(self, shape, dtype):
            return np.full(shape, 1 - 2**-24, dtype)

    lam = np.array([0.01, 1.0, 2.99], np.float32)
    expected = stats.poisson.ppf(np.float32(1 - 2**-24), lam.astype(np.float64))
    drawn = poisson_by_inversion(lam, LargestUniform())
    # the float64 tail search is exact; the float32 terms may be off by one at a
    # probability of ~1e-7 (float32 rounding: the uniforms' own resolution)
    assert np.array_equal(drawn[1:], expected[1:])
    assert abs(drawn[0] - expected[0]) <= 1


def test_shot_noise_is_right_in_every_regime_of_one_frame():
    """Dim (inversion), middle (numpy) and bright (Gaussian) pixels in one frame."""
    from simulators.camera_model import _shot_noise

    means = np.repeat(np.array([0.5, 40.0, 2000.0], np.float32), 200_000)
    out = np.empty_like(means)
    _shot_noise(means, out, np.random.default_rng(8))
    for k, m in enumerate((0.5, 40.0, 2000.0)):
        part = out[k * 200_000 : (k + 1) * 200_000]
        assert part.mean() == pytest.approx(m, rel=0.01)
        assert part.var() == pytest.approx(m, rel=0.03)


def test_clipping_at_saturation():
    frame = CAM.expose(np.full((64, 64), 1e6, np.float32), 10.0, np.random.default_rng(0))
    full_well_adu = CAM.full_well_e / CAM.e_per_adu + CAM.offset_adu
    read_noise_adu = CAM.read_noise_e / CAM.e_per_adu
    assert frame.max() <= min(65535, full_well_adu + 6 * read_noise_adu)
    assert frame.mean() == pytest.approx(min(65535, full_well_adu), rel=0.01)
    huge = CameraModel(full_well_e=1e9).expose(
        np.full((8, 8), 1e8, np.float32), 10.0, np.random.default_rng(0)
    )
    assert (huge == 65535).all()


def test_otf_support_ends_at_2na_over_lambda():
    shape, pixel, na, lam = (512, 512), 20.0, 1.49, 510.0
    fy = np.fft.fftfreq(shape[0], pixel)[:, None]
    fx = np.fft.rfftfreq(shape[1], pixel)[None, :]
    rho = np.hypot(fy, fx)
    cutoff = 2 * na / lam
    bin_width = 1 / (shape[0] * pixel)
    for defocus in (0.0, 200.0):
        otf = np.abs(otf_2d(shape, pixel, na, lam, defocus_nm=defocus))
        assert otf[0, 0] == pytest.approx(1.0)
        assert otf[rho > cutoff + 1.5 * bin_width].max() < 1e-5
        assert otf[(rho > 0.9 * cutoff) & (rho < 0.95 * cutoff)].max() > 1e-3
    psf = psf_2d((256, 256), 10.0, na, lam)
    row = psf[128]
    above = np.nonzero(row >= row.max() / 2)[0]
    fwhm = (above[-1] - above[0] + 1) * 10.0
    assert fwhm == pytest.approx(widefield_fwhm_nm(na, lam), rel=0.12)


def test_illumination_recovers_the_drawn_grating():
    for angle_deg in (0.0, 60.0, 120.0, 17.0):
        phases = []
        for phase in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
            img = draw_grating((600, 800), 6.0, np.radians(angle_deg), phase)
            pattern = illumination_from_slm(img, 65.0, 1.49, 488.0, 0.8)
            assert pattern.period_nm == pytest.approx(195.0, rel=0.005)
            assert abs((np.degrees(pattern.angle_rad) - angle_deg + 90) % 180 - 90) < 0.2
            assert pattern.modulation == pytest.approx(0.8, abs=0.02)
            phases.append(pattern.phase_rad)
        steps = np.angle(np.exp(1j * np.diff(phases)))
        assert np.allclose(steps, 2 * np.pi / 3, atol=0.02)


def test_uniform_and_out_of_pupil_slm_give_widefield():
    assert illumination_from_slm(np.zeros((512, 512), np.uint8), 65.0, 1.49, 488.0).is_uniform
    assert illumination_from_slm(np.full((512, 512), 255, np.uint8), 65.0, 1.49, 488.0).is_uniform
    too_fine = draw_grating((512, 512), 3.0, 0.3, 0.0)  # orders beyond NA at 488 nm
    assert illumination_from_slm(too_fine, 65.0, 1.49, 488.0).is_uniform


def test_raw_sim_frames_have_fourier_peaks_at_the_pattern():
    density = make_sample("er", (512, 512), 32.5, seed=2, motion=False).density()
    fov = (256 * 65.0, 256 * 65.0)
    patterns = default_sim_patterns(fov_nm=fov)
    raw = simulate_sim_stack(density, patterns, rng=np.random.default_rng(0)).astype(float)
    bin_width = 1 / (256 * 65.0)
    fy = np.fft.fftfreq(256, 65.0)[:, None]
    fx = np.fft.fftfreq(256, 65.0)[None, :]
    for a in range(3):
        spectrum = np.abs(np.fft.fft2(raw[3 * a] - raw[3 * a].mean()))
        spectrum[np.hypot(fy, fx) < 1 / 300] = 0
        iy, ix = np.unravel_index(np.argmax(spectrum), spectrum.shape)
        k = np.array([fy[iy, 0], fx[0, ix]])
        true_k = np.array(patterns[3 * a].components[0][:2])
        assert min(np.hypot(*(k - true_k)), np.hypot(*(k + true_k))) <= 1.5 * bin_width
        period = 1 / np.hypot(*k)
        assert period == pytest.approx(195.0, rel=0.02)


def test_fringe_cache_equals_direct_rendering():
    density = make_sample("er", (256, 256), 32.5, seed=5, motion=False).density()
    otf = otf_2d((256, 256), 32.5, 1.49, 510)
    cache = FringeCache(density, otf, 2, 32.5)
    for pattern in default_sim_patterns(fov_nm=(128 * 65, 128 * 65))[:4]:
        direct = render_expected(density, pattern, otf, 2, 100.0, 32.5)
        fast = expected_from_cache(cache, pattern, 100.0)
        assert np.allclose(fast, direct, rtol=1e-3, atol=1e-3 * direct.max())


def test_signal_falls_with_accumulated_dose():
    doses = np.array([0.0, 50.0, 100.0, 200.0, 400.0])
    survival = bleach_survival(doses, 100.0)
    assert survival[0] == 1.0
    assert survival[2] == pytest.approx(0.5)
    assert np.all(np.diff(survival) < 0)


def test_blinking_is_sparse_only_above_threshold():
    rng = np.random.default_rng(0)
    assert blinking_state(1000, 20.0, 10.0, rng, threshold_mw=100).all()
    on = blinking_state(100000, 140.0, 10.0, rng, threshold_mw=100)
    assert 0 < on.mean() < 0.01
    assert blinking_state(100000, 300.0, 10.0, rng, threshold_mw=100).mean() < on.mean()
    density = np.zeros((64, 64), np.float32)
    density[32, 32] = 1.0
    pos = sample_emitters(density, 10.0, 50.0, rng)
    assert len(pos) > 20 and np.abs(pos).max() < 10.0
    assert render_points(pos, np.ones(len(pos)), (64, 64), 10.0).sum() == pytest.approx(len(pos))


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
def test_samples_are_seeded_and_move_only_with_motion(kind):
    a = make_sample(kind, (256, 256), 32.5, seed=1).density()
    b = make_sample(kind, (256, 256), 32.5, seed=1).density()
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() > 0.2
    if kind != "line-pairs":
        assert not np.array_equal(a, make_sample(kind, (256, 256), 32.5, seed=2).density())
    moving = make_sample(kind, (256, 256), 32.5, seed=1, motion=True)
    still = make_sample(kind, (256, 256), 32.5, seed=1, motion=False)
    moving.advance(0.5)
    still.advance(0.5)
    assert np.array_equal(still.density(), a)
    if kind in ("microtubules", "vesicles", "mitochondria", "er"):
        assert not np.array_equal(moving.density(), a)


def test_user_sample_is_centred_and_normalised(tmp_path):
    arr = np.zeros((40, 60), np.float32)
    arr[20, 30] = 5.0
    sample = sample_from_array(arr, 65.0, (128, 128), 32.5)
    d = sample.density()
    assert d.max() == pytest.approx(1.0, rel=1e-3)
    iy, ix = np.unravel_index(np.argmax(d), d.shape)
    assert abs(iy - 64) <= 2 and abs(ix - 64) <= 2
    np.save(tmp_path / "d.npy", arr)
    import tifffile

    tifffile.imwrite(tmp_path / "d.tif", arr)
    for name in ("d.npy", "d.tif"):
        loaded = load_sample_file(tmp_path / name, 65.0, (128, 128), 32.5).density()
        assert np.allclose(loaded, d)
    vol = load_sample_file(tmp_path / "d.npy", 65.0, (128, 128), 32.5)
    assert vol.motion is False
    (tmp_path / "bad.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="bad.png"):
        load_sample_file(tmp_path / "bad.png", 65.0, (128, 128), 32.5)
    np.save(tmp_path / "neg.npy", -arr)
    with pytest.raises(ValueError, match="neg.npy"):
        load_sample_file(tmp_path / "neg.npy", 65.0, (128, 128), 32.5)


def test_pattern_set_and_binning():
    images = sim_pattern_set((256, 256), 195.0, 65.0)
    assert len(images) == 9 and all(img.dtype == np.uint8 for img in images)
    hi = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert bin_to_camera(hi, 2).tolist() == [[10, 18], [42, 50]]
