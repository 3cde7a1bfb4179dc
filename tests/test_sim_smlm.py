"""The SMLM simulator (issue 18 item 1): photoswitching under excitation and activation,
photons per switching event, a pupil PSF integrated over the pixels (astigmatic for 3D),
drift, and the ground truth as a localisation table."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.camera_model import CameraModel
from simulators.fluctuation import Emitters
from simulators.smlm import (
    SMLM_DYE,
    TRUTH_COLUMNS,
    SMLMAcquisition,
    simulate_smlm,
    stationary_density_per_um2,
    uniform_emitters,
)
from simulators.smlm_psf import PSFRenderer, PupilOptics, pupil_psf

FIELD_NM = 48 * 65.0


def test_switching_rates_follow_excitation_and_activation():
    """More excitation: shorter on-times and fewer dyes on; activation brings more back."""
    dye = SMLM_DYE
    assert dye.mean_on_time_ms(200) < dye.mean_on_time_ms(140) < dye.mean_on_time_ms(60)
    assert dye.on_fraction(200) < dye.on_fraction(140)
    assert dye.on_fraction(140, activation_mw=2.0) > 5 * dye.on_fraction(140)
    r = dye.rates(140)
    cycles = (r.k_off + r.k_bleach) / r.k_bleach
    assert 5 < cycles < 50  # a dSTORM dye survives tens of switching cycles


def test_photons_per_switching_event_are_thousands():
    """Summed over its consecutive on-frames, an event gives thousands of camera photons."""
    em = uniform_emitters(4000, (FIELD_NM, FIELD_NM), seed=1)
    burst = SMLMAcquisition(em, seed=2).acquire(400, activation_mw=1.0)
    truth = burst.truth
    order = np.lexsort((truth["frame"], truth["emitter"]))
    emitter, frame = truth["emitter"][order], truth["frame"][order]
    new_event = np.r_[True, (np.diff(emitter) != 0) | (np.diff(frame) != 1)]
    event = np.cumsum(new_event) - 1
    per_event = np.bincount(event, truth["photons"][order])
    assert len(per_event) > 200
    assert 2000 < np.median(per_event) < 10000, np.median(per_event)
    full = truth["on_fraction"] > 0.999  # on the whole exposure: rate x brightness x 10 ms
    per_full_frame = truth["photons"][full] / em.brightness[truth["emitter"][full]]
    per_full_frame /= truth["on_fraction"][full]
    assert np.allclose(per_full_frame, SMLM_DYE.photons_per_ms_mw * 140 * 10, rtol=1e-4)


def test_activation_raises_density_and_bleaching_depends_on_power():
    em = uniform_emitters(3000, (FIELD_NM, FIELD_NM), seed=3)
    low = simulate_smlm(em, 200, activation_mw=0.0, seed=4)
    high = simulate_smlm(em, 200, activation_mw=2.0, seed=4)
    assert high.density_per_um2() > 4 * low.density_per_um2()
    dyes_per_um2 = len(em) / (FIELD_NM / 1000) ** 2
    expected = stationary_density_per_um2(dyes_per_um2, 140.0, 2.0)
    assert high.density_per_um2() == pytest.approx(expected, rel=0.2)
    gentle = SMLMAcquisition(em, seed=5, initial="on").acquire(100, power_mw=40.0)
    harsh = SMLMAcquisition(em, seed=5, initial="on").acquire(100, power_mw=200.0)
    assert harsh.bleached_fraction > gentle.bleached_fraction > 0


def test_acquisition_keeps_state_between_bursts():
    """A control loop may change the activation between bursts: frames count on, dyes stay."""
    em = uniform_emitters(2000, (FIELD_NM, FIELD_NM), seed=6)
    acq = SMLMAcquisition(em, seed=7)
    first = acq.acquire(30)
    second = acq.acquire(30, activation_mw=np.linspace(0, 2, 30))
    assert first.first_frame == 0 and second.first_frame == 30
    assert second.truth["frame"].min() >= 30 and first.truth["frame"].max() < 30
    assert np.allclose(second.activation_mw, np.linspace(0, 2, 30))
    assert set(TRUTH_COLUMNS) == set(second.truth)


def test_truth_marks_where_the_photons_are():
    """Without background or read noise, each true emitter sits at the centre of its
    photons (shot noise: ~0.03 px for thousands of photons)."""
    rng = np.random.default_rng(8)
    grid = (np.stack(np.meshgrid([-12, 0, 12], [-12, 0, 12]), -1).reshape(-1, 2) + 0.3) * 65.0
    positions = (grid + rng.uniform(-30, 30, grid.shape)).astype(np.float32)
    em = Emitters(positions, np.ones(len(grid), np.float32), (FIELD_NM, FIELD_NM))
    camera = CameraModel(read_noise_e=0.0)
    burst = SMLMAcquisition(
        em, camera=camera, background_per_ms_mw=0.0, initial="on", seed=9
    ).acquire(1)
    frame = (burst.frames[0].astype(np.float64) - camera.offset_adu) * camera.e_per_adu
    t = burst.truth
    bright = np.flatnonzero(t["photons"] > 1000)
    assert len(bright) >= 3
    for i in bright:
        y, x = t["y_nm"][i] / 65.0, t["x_nm"][i] / 65.0
        r0, c0 = int(y), int(x)
        patch = frame[r0 - 5 : r0 + 6, c0 - 5 : c0 + 6]
        rr, cc = np.mgrid[r0 - 5 : r0 + 6, c0 - 5 : c0 + 6] + 0.5
        cy, cx = (patch * rr).sum() / patch.sum(), (patch * cc).sum() / patch.sum()
        assert abs(cy - y) < 0.2 and abs(cx - x) < 0.2


def test_drift_moves_the_images_and_is_recorded():
    em = uniform_emitters(1500, (FIELD_NM, FIELD_NM), seed=10)
    drift = np.stack([np.zeros(20), np.linspace(0, 300, 20)], axis=1)
    burst = simulate_smlm(em, 20, activation_mw=2.0, seed=11, drift_nm=drift)
    t = burst.truth
    place = t["x_nm"] - t["drift_x_nm"]
    assert np.allclose(place, burst.truth["x_nm"] - drift[t["frame"], 1])
    sample_x = uniform_emitters(1500, (FIELD_NM, FIELD_NM), seed=10).positions_nm[:, 1]
    assert np.allclose(place, sample_x[t["emitter"]] + FIELD_NM / 2, atol=1e-3)


def test_pupil_psf_rendering_is_exact_and_shift_invariant():
    """The tile of an emitter is the pupil PSF integrated over the pixels, at any position."""
    renderer = PSFRenderer(PupilOptics())
    one = np.array([0])
    a = renderer.render((64, 64), one, 1, np.array([30.3]), np.array([20.7]), np.array([1.0]))
    b = renderer.render((64, 64), one, 1, np.array([31.3]), np.array([22.7]), np.array([1.0]))
    assert np.abs(np.roll(a[0], (1, 2), (0, 1)) - b[0]).max() < 1e-6
    assert a.sum() == pytest.approx(1.0, abs=0.02)
    fine = PupilOptics(pixel_nm=65.0 / 8)
    g = 1536  # 8x finer grid, wide enough to sample the pupil finely
    reference = pupil_psf(fine, 0.0, g)[0].reshape(g // 8, 8, g // 8, 8).sum(axis=(1, 3))
    centre = (g // 2 + 0.5) / 8  # the fine grid's centre, in camera pixels
    tile = renderer.render(
        (g // 8, g // 8), one, 1, np.array([centre]), np.array([centre]), np.array([1.0])
    )[0]
    assert np.abs(tile - reference).max() < 0.01 * reference.max()


def test_astigmatism_elongates_the_psf_along_opposite_axes():
    renderer = PSFRenderer(PupilOptics(astigmatism_nm=80.0, z_range_nm=600.0))
    yy, xx = np.mgrid[:32, :32] + 0.5

    def widths(z):
        img = renderer.render(
            (32, 32),
            np.array([0]),
            1,
            np.array([16.0]),
            np.array([16.0]),
            np.array([1.0]),
            np.array([z]),
        )[0]
        core = img > 0.2 * img.max()
        w = img * core
        sy = np.sqrt((w * (yy - 16) ** 2).sum() / w.sum())
        sx = np.sqrt((w * (xx - 16) ** 2).sum() / w.sum())
        return sx, sy

    below, focus, above = widths(-250.0), widths(0.0), widths(250.0)
    assert focus[0] == pytest.approx(focus[1], rel=0.02)
    assert (below[0] - below[1]) * (above[0] - above[1]) < 0  # elongation flips across focus
    assert abs(below[0] - below[1]) > 0.3


def test_bad_inputs_are_refused():
    em = uniform_emitters(10, (FIELD_NM, FIELD_NM))
    with pytest.raises(ValueError, match="powers"):
        SMLMAcquisition(em).acquire(3, power_mw=-1.0)
    with pytest.raises(ValueError, match="drift_nm"):
        SMLMAcquisition(em).acquire(3, drift_nm=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="initial"):
        SMLMAcquisition(em, initial="bright")
    with pytest.raises(ValueError, match="z_nm"):
        SMLMAcquisition(em, z_nm=np.zeros(3))
    with pytest.raises(ValueError, match="patch"):
        PupilOptics(patch=9)


def test_truth_is_a_localisation_table_srlive_exports(tmp_path):
    """The ground truth uses the localisation table's columns and coordinates: it loads as
    one and exports like one (e.g. to compare in ThunderSTORM or Picasso)."""
    import csv

    from srlive.recon.smlm import Localizations, write_export

    em = uniform_emitters(500, (FIELD_NM, FIELD_NM), seed=12)
    burst = simulate_smlm(em, 20, activation_mw=2.0, seed=13)
    table = Localizations.from_columns(burst.truth, burst.pixel_nm, (48, 48), len(burst))
    assert len(table) == len(burst.truth["frame"]) > 0
    assert np.array_equal(table["x_nm"], burst.truth["x_nm"])
    path = write_export(tmp_path / "truth.csv", table)[0]
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(table)
    assert float(rows[0]["x [nm]"]) == pytest.approx(table["x_nm"][0], abs=1e-3)
