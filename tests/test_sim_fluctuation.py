"""Blinking-fluorophore physics for fluctuation SR (SRRF/SOFI): dynamics, bursts, truth, world."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.blinking import (
    BLEACHED,
    ON,
    SwitchingDye,
    integrate_exposure,
    jump,
    stationary_states,
)
from simulators.camera_model import CameraModel
from simulators.fluctuation import (
    Emitters,
    bleached_fraction,
    line_pair_emitters,
    simulate_burst,
    structure_emitters,
)
from simulators.live_blinking import LiveBlinking, poisson_counts
from simulators.optics import widefield_fwhm_nm
from simulators.samples import make_sample
from simulators.world import SimulatedWorld

CAM = CameraModel()
NO_BLEACH = SwitchingDye(bleach_per_mw_s=0.0)
FWHM = widefield_fwhm_nm(1.49, 510.0)


def _scattered(n: int, field_nm: float = 2080.0, seed: int = 0) -> Emitters:
    rng = np.random.default_rng(seed)
    positions = rng.uniform(-field_nm / 2, field_nm / 2, (n, 2)).astype(np.float32)
    return Emitters(positions, np.ones(n, np.float32), (field_nm, field_nm))


def _lag_cov(x: np.ndarray, lag: int) -> float:
    d = x - x.mean(axis=0)
    return float(np.mean(d[lag:] * d[:-lag]))


def test_on_fraction_and_correlation_time_match_the_markov_chain():
    power, exposure = 20.0, 10.0
    burst = simulate_burst(
        _scattered(2000),
        400,
        power,
        exposure,
        dye=NO_BLEACH,
        frame_interval_ms=exposure,  # light all the time: the chain is stationary
        rng=np.random.default_rng(1),
    )
    rates = NO_BLEACH.rates(power)
    expected = rates.k_on / (rates.k_on + rates.k_off)
    assert 0.1 < expected < 0.5
    assert burst.on_fraction.mean() == pytest.approx(expected, abs=0.01)
    # exposure-integrated two-state signal: cov(lag 2) / cov(lag 1) = exp(-(k_on + k_off)·Δ)
    ratio = _lag_cov(burst.on_fraction, 2) / _lag_cov(burst.on_fraction, 1)
    assert ratio == pytest.approx(np.exp(-(rates.k_on + rates.k_off) * exposure), abs=0.03)
    # partial frames exist: the on-fraction is integrated over the exposure
    partial = (burst.on_fraction > 0.05) & (burst.on_fraction < 0.95)
    assert partial.mean() > 0.05
    # default regime: on for a few frames
    assert 1.0 <= NO_BLEACH.mean_on_time_ms(power) / exposure <= 5.0


def test_higher_power_means_fewer_on_and_faster_bleaching():
    emitters = _scattered(3000)
    low, high = (
        simulate_burst(emitters, 300, p, 10.0, rng=np.random.default_rng(2)) for p in (5.0, 80.0)
    )
    assert high.on_fraction.mean() < 0.5 * low.on_fraction.mean()
    assert bleached_fraction(high.final_state) > bleached_fraction(low.final_state) + 0.05
    # bleaching is absorbing: a continued burst never lights a bleached dye again
    more = simulate_burst(emitters, 20, 80.0, initial_state=high.final_state)
    assert more.on_fraction[:, high.final_state == BLEACHED].max() == 0.0


def test_darkness_between_frames_lets_dyes_recover():
    states = np.zeros(20000, np.int8)
    dark = NO_BLEACH.rates(0.0)
    after = jump(states, 1000.0, dark, np.random.default_rng(3))  # ≫ 1/(k_on + k_off)
    assert (after == ON).mean() == pytest.approx(dark.on_fraction, abs=0.01)
    light = NO_BLEACH.rates(20.0)
    on, _ = integrate_exposure(
        stationary_states(20000, light, np.random.default_rng(4)),
        10.0,
        light,
        np.random.default_rng(5),
    )
    assert on.mean() == pytest.approx(light.on_fraction, abs=0.01)


def _electrons(burst) -> np.ndarray:
    return (burst.frames.astype(np.float64) - burst.camera.offset_adu) * burst.camera.e_per_adu


def test_variance_exceeds_poisson_where_emitters_blink_and_equals_it_elsewhere():
    pair = line_pair_emitters(300.0, 1500.0, field_nm=4160.0, rng=np.random.default_rng(6))
    burst = simulate_burst(pair, 300, 20.0, 10.0, rng=np.random.default_rng(7))
    e = _electrons(burst)
    excess = e.var(axis=0) - CAM.read_noise_e**2 - CAM.e_per_adu**2 / 12  # minus read + ADU
    ratio = excess / e.mean(axis=0)  # 1 for pure shot noise
    truth = burst.truth_image(burst.pixel_nm)
    on_lines = truth > 0.3 * truth.max()
    yy, xx = np.indices(ratio.shape)
    centre = (np.array(ratio.shape) - 1) / 2
    far = np.hypot(yy - centre[0], xx - centre[1]) > 1200 / burst.pixel_nm  # > 1.2 µm away
    assert np.median(ratio[on_lines]) > 3.0
    assert np.mean(ratio[far]) == pytest.approx(1.0, abs=0.05)


def test_time_average_follows_the_blurred_truth_and_keeps_the_photons():
    emitters = structure_emitters("er", (128, 128), seed=3)
    burst = simulate_burst(emitters, 40, 20.0, 10.0, rng=np.random.default_rng(8))
    mean = burst.photon_frames().mean(axis=0) - burst.background_photons
    truth = burst.truth_image(burst.pixel_nm, blur_nm=FWHM)
    assert np.corrcoef(mean.ravel(), truth.ravel())[0, 1] > 0.95
    assert mean.sum() == pytest.approx(burst.truth_density.sum(), rel=0.03)
    assert burst.truth_density.shape == (640, 640)  # camera / 5 grid


@pytest.mark.parametrize("psf", ["gaussian", "airy"])
def test_both_psfs_blur_a_point_to_the_diffraction_limit(psf):
    point = Emitters(np.zeros((1, 2), np.float32), np.full(1, 3000.0, np.float32), (2000.0, 2000.0))
    always_on = SwitchingDye(off_per_mw_s=0.0, k_off_dark_per_s=0.0, bleach_per_mw_s=0.0)
    burst = simulate_burst(
        point,
        10,
        20.0,
        10.0,
        pixel_nm=10.0,
        psf=psf,
        dye=always_on,
        background_per_ms_mw=0.0,
        rng=np.random.default_rng(14),
    )
    image = burst.photon_frames().mean(axis=0)  # peak ~3000 photons: a clean half maximum
    area = (image > image.max() / 2).sum() * 10.0**2
    assert 2 * np.sqrt(area / np.pi) == pytest.approx(FWHM, rel=0.1)


def test_frames_are_uint16_with_the_camera_offset():
    empty = Emitters(np.empty((0, 2), np.float32), np.empty(0, np.float32), (2080.0, 2080.0))
    burst = simulate_burst(empty, 5, 20.0, 10.0, rng=np.random.default_rng(9))
    assert burst.frames.dtype == np.uint16 and burst.frames.shape == (5, 32, 32)
    expected = CAM.offset_adu + (CAM.qe * burst.background_photons) / CAM.e_per_adu
    assert burst.frames.mean() == pytest.approx(expected, abs=0.5)
    dark = simulate_burst(empty, 2, 0.0, 10.0)
    assert dark.frames.mean() == pytest.approx(CAM.offset_adu, abs=0.2)


def test_bad_input_is_refused_with_one_line():
    with pytest.raises(ValueError, match="psf"):
        simulate_burst(_scattered(5), 2, psf="lorentz")
    with pytest.raises(ValueError, match="n_frames"):
        simulate_burst(_scattered(5), 0)
    with pytest.raises(ValueError, match="2D"):
        from simulators.fluctuation import emitters_from_density

        emitters_from_density(np.ones(5), 10.0)


def _profile_across(image: np.ndarray) -> np.ndarray:
    return image.sum(axis=1)  # horizontal lines: sum along x


def test_line_pair_truth_has_two_lines_at_the_separation():
    pair = line_pair_emitters(150.0, 3000.0, 50.0, rng=np.random.default_rng(10))
    burst = simulate_burst(pair, 30, 20.0, 10.0, rng=np.random.default_rng(11))
    profile = _profile_across(burst.truth_image(5.0))
    y = (np.arange(profile.size) - (profile.size - 1) / 2) * 5.0
    upper, lower = y < 0, y > 0
    peaks = (y[upper][np.argmax(profile[upper])], y[lower][np.argmax(profile[lower])])
    assert peaks[1] - peaks[0] == pytest.approx(150.0, abs=10.0)
    assert profile[np.abs(y) < 30].max() < 0.1 * profile.max()  # empty between them


def _has_dip(profile: np.ndarray) -> bool:
    """A minimum between the brightest pixel left and right of the centre."""
    c = profile.size // 2
    left = c - 8 + int(np.argmax(profile[c - 8 : c]))
    right = c + int(np.argmax(profile[c : c + 8]))
    return profile[left : right + 1].min() < 0.95 * min(profile[left], profile[right])


@pytest.mark.parametrize(("separation", "dip"), [(150.0, False), (450.0, True)])
def test_line_pair_mean_image_is_unresolved_below_the_diffraction_limit(separation, dip):
    pair = line_pair_emitters(separation, 3000.0, 50.0, rng=np.random.default_rng(12))
    burst = simulate_burst(pair, 50, 20.0, 10.0, rng=np.random.default_rng(13))
    mean = burst.photon_frames().mean(axis=0)
    assert _has_dip(_profile_across(mean[:, 16:-16])) == dip


def test_live_sites_persist_and_grow_monotonically_with_density():
    density = make_sample("microtubules", (128, 128), 32.5, seed=2, motion=False).density()
    live = LiveBlinking(density.shape, 32.5, 50.0, seed=4)
    live.place(density)
    assert len(live) > 100
    live.frame(20.0, 10.0, 0.0, False, 1.0, np.random.default_rng(0))
    ids, states = live.ids.copy(), live.states.copy()
    live.place(density)
    np.testing.assert_array_equal(live.ids, ids)
    np.testing.assert_array_equal(live.states, states)  # same dyes, same states
    live.place(density * 1.5)
    assert np.isin(ids, live.ids).all()  # more density only adds dyes
    lam = np.linspace(0.01, 8, 4000)
    u = np.random.default_rng(1).random(lam.size)
    assert poisson_counts(lam, u).mean() == pytest.approx(lam.mean(), rel=0.05)


def _world(fluctuation: bool) -> SimulatedWorld:
    world = SimulatedWorld(
        frame_shape=(64, 64), sample_kind="microtubules", motion=False, fluctuation=fluctuation
    )
    world.register_laser(488, 200.0)
    world.set_laser(488, power_mw=20.0, on=True)
    return world


def test_world_fluctuation_mode_blinks_with_persistent_dyes():
    frames = {}
    for mode in (False, True):
        world = _world(mode)
        frames[mode] = np.stack([world.expose(10.0)[0] for _ in range(40)]).astype(float)
        if mode:
            assert len(world._live) > 0
    e = {m: (f - CAM.offset_adu) * CAM.e_per_adu for m, f in frames.items()}
    bright = e[False].mean(axis=0) > np.percentile(e[False].mean(axis=0), 95)
    ratio = {
        m: np.median((x.var(axis=0) - CAM.read_noise_e**2)[bright] / x.mean(axis=0)[bright])
        for m, x in e.items()
    }
    assert ratio[False] == pytest.approx(1.0, abs=0.3)  # continuous dyes: shot noise only
    assert ratio[True] > 3.0  # blinking: fluctuations well above shot noise
    # same structure, similar brightness (the dyes recover in the dark between snaps)
    assert np.corrcoef(e[False].mean(0).ravel(), e[True].mean(0).ravel())[0, 1] > 0.9
    assert 0.5 < e[True].mean() / e[False].mean() < 4.0


def test_world_smlm_power_still_wins_over_fluctuation_mode():
    world = _world(True)
    world.set_laser(488, power_mw=150.0)
    frame, _ = world.expose(10.0)
    assert world._live is None  # the SMLM path rendered this frame
    assert frame.dtype == np.uint16


def test_hub_property_switches_fluctuation_mode(core):
    from simulators.devices import hub_world

    core.setProperty("SimHub", "Fluctuation", "On")
    world = hub_world("SimHub")
    assert world.fluctuation and core.getProperty("SimHub", "Fluctuation") == "On"
    core.setProperty("Laser488", "PowerMW", 20.0)
    core.setShutterOpen("Laser488", True)
    core.setExposure(10.0)
    snaps = []
    for _ in range(20):
        core.snapImage()
        snaps.append((core.getImage().astype(float) - CAM.offset_adu) * CAM.e_per_adu)
    e = np.stack(snaps)
    bright = e.mean(axis=0) > np.percentile(e.mean(axis=0), 95)
    excess = e.var(axis=0)[bright] - CAM.read_noise_e**2
    assert np.median(excess / e.mean(axis=0)[bright]) > 2.0  # blinking, not just shot noise
    assert len(world._live) > 0
    core.setProperty("SimHub", "Fluctuation", "Off")
    assert not world.fluctuation
