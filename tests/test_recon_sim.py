"""Wiener SIM on the project's simulator: blind parameters, resolution gain, line pairs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from simulators.imaging import default_sim_patterns, simulate_sim_stack
from simulators.samples import make_sample
from srlive.recon.resolution import decorrelation_resolution_nm, frc_resolution_nm
from srlive.recon.sim_params import estimate_sim_parameters
from srlive.recon.wiener_sim import WienerSIM

GRID = (1024, 1024)
HI_NM = 32.5


@pytest.fixture(scope="module")
def patterns():
    return default_sim_patterns()


@pytest.fixture(scope="module")
def microtubule_sets(patterns):
    density = make_sample("microtubules", GRID, HI_NM, seed=3, motion=False).density()
    return [simulate_sim_stack(density, patterns, rng=np.random.default_rng(s)) for s in (1, 2)]


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 90) % 180 - 90)


def test_parameters_are_estimated_blind(patterns, microtubule_sets):
    est = estimate_sim_parameters(microtubule_sets[0], 65.0, 1.49, 510.0)
    true_angles = [np.degrees(p.angle_rad) % 180 for p in patterns[::3]]
    for a in range(3):
        assert est.period_nm[a] == pytest.approx(patterns[3 * a].period_nm, rel=0.002)
        assert _angle_diff(est.angles_deg[a], true_angles[a]) < 0.1
        assert est.modulation[a] == pytest.approx(0.8, abs=0.1)
        # phase steps between frames match the SLM's (up to the sign of k)
        steps = np.angle(np.exp(1j * np.diff(est.phases[a])))
        true = np.angle(np.exp(1j * np.diff([p.phase_rad for p in patterns[3 * a : 3 * a + 3]])))
        assert min(np.abs(steps - true).max(), np.abs(steps + true).max()) < np.radians(3)


def test_sim_resolution_beats_widefield_by_1_7(microtubule_sets):
    recon = WienerSIM((512, 512), 65.0, 1.49, 510.0)
    recon.calibrate(microtubule_sets[0])
    sr = [recon.reconstruct(raw) for raw in microtubule_sets]
    wf = [recon.widefield_upsampled(raw) for raw in microtubule_sets]
    sim_nm = frc_resolution_nm(sr[0], sr[1], HI_NM)
    wf_nm = frc_resolution_nm(wf[0], wf[1], HI_NM)
    assert wf_nm / sim_nm >= 1.7, (wf_nm, sim_nm)
    assert sim_nm < 110
    assert decorrelation_resolution_nm(sr[0], HI_NM) < decorrelation_resolution_nm(wf[0], HI_NM)


def _dip(img: np.ndarray, sep: float, centre, angle: float) -> float:
    """Minimum between two lines over the smaller peak, from a line-averaged profile."""
    along = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([along[1], -along[0]])
    ts = np.arange(-300, 301, 4.0)
    ss = np.arange(-400, 401, 20.0)
    pts = np.array(centre)[None, None, :] + ts[:, None, None] * normal + ss[None, :, None] * along
    iy = pts[..., 0] / HI_NM + (img.shape[0] - 1) / 2
    ix = pts[..., 1] / HI_NM + (img.shape[1] - 1) / 2
    prof = ndimage.map_coordinates(img, [iy.ravel(), ix.ravel()], order=1)
    prof = prof.reshape(len(ts), len(ss)).mean(axis=1)
    a, b, m = (int(np.argmin(abs(ts - v))) for v in (-sep / 2, sep / 2, 0.0))
    peaks = min(prof[a - 3 : a + 4].max(), prof[b - 3 : b + 4].max())
    return float(prof[m - 2 : m + 3].min() / peaks)


def test_two_lines_120_nm_apart_are_separated_by_sim_only(patterns):
    sample = make_sample("line-pairs", GRID, HI_NM)
    raw = simulate_sim_stack(sample.density(), patterns, rng=np.random.default_rng(5))
    recon = WienerSIM((512, 512), 65.0, 1.49, 510.0)
    recon.calibrate(raw)
    sr, wf = recon.reconstruct(raw), recon.widefield_upsampled(raw)
    pairs = [(c, ang) for sep, c, ang in sample.line_pair_layout() if sep == 120.0]
    assert len(pairs) == 3
    for centre, angle in pairs:
        assert _dip(sr, 120.0, centre, angle) <= 0.8
        assert _dip(wf, 120.0, centre, angle) > 0.95


def test_reconstruct_needs_calibration_and_nine_frames(microtubule_sets):
    recon = WienerSIM((512, 512), 65.0, 1.49, 510.0)
    with pytest.raises(RuntimeError, match="calibrate"):
        recon.reconstruct(microtubule_sets[0])
    recon.calibrate(microtubule_sets[0])
    with pytest.raises(ValueError, match="9 frames"):
        recon.reconstruct(microtubule_sets[0][:6])
    out = recon.reconstruct(microtubule_sets[1])
    assert out.shape == (1024, 1024) and out.dtype == np.float32 and np.isfinite(out).all()
