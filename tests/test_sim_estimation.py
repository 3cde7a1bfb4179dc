"""Blind SIM pattern estimation: real data from another microscope, and robustness cases.

The real raw data (``../shared/data/real-sim/tsim-er``) was recorded on a microscope this
project did not build; the carriers and the peer's agreement it is held to are those in the
data's README and in ``benchmarks/peers/README.md`` (napari-sim-processor 0.1.1, defaults).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from simulators.illumination import IlluminationPattern
from simulators.imaging import simulate_sim_stack
from simulators.samples import make_sample
from srlive.recon.optics import NominalPattern
from srlive.recon.sim_params import estimate_sim_parameters
from srlive.recon.wiener_sim import WienerSIM

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL = SHARED / "data/real-sim/tsim-er"
# carriers per angle in frame order (period in camera pixels, angle in degrees), README
REAL_CARRIERS = [(2.692, 2.4), (2.702, 122.4), (2.684, 62.4)]
# the peer's agreement (full, high-pass) per time point, measured side by side
PEER_AGREEMENT = [(0.8885, 0.7739), (0.8906, 0.7752), (0.8978, 0.7905)]
PX = 65.0


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 90.0) % 180.0 - 90.0)


def _agreement_tool():
    path = SHARED / "tools/compare_to_reference.py"
    spec = importlib.util.spec_from_file_location("compare_to_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.agreement


@pytest.fixture(scope="module")
def real_sets():
    tifffile = pytest.importorskip("tifffile")
    if not (REAL / "ER_1.tif").exists():
        pytest.skip("real SIM data not present")
    raw = tifffile.imread(REAL / "ER_1.tif")
    ref = tifffile.imread(REAL / "ER_1_reference_sim.tif").astype(np.float64)
    return raw, ref


@pytest.mark.parametrize("t", [0, 1, 2])
def test_real_data_carriers_found_blind(real_sets, t):
    raw, _ = real_sets
    params = estimate_sim_parameters(raw[t], PX, 1.49, 510.0, offset_adu=60.0)
    assert params.found.all(), params.report()
    for a, (period_px, angle) in enumerate(REAL_CARRIERS):
        assert params.period_nm[a] / PX == pytest.approx(period_px, rel=0.005)
        assert _angle_diff(params.angles_deg[a], angle) < 0.5
        # measured phase steps, not assumed: the data's steps are 110-135°, not 120° exactly
        steps = np.degrees(np.abs(np.angle(np.exp(1j * np.diff(params.phases[a])))))
        assert np.all((steps > 90) & (steps < 150)), steps


@pytest.mark.parametrize("t", [0, 1, 2])
def test_real_data_agreement_at_least_the_peers(real_sets, t):
    pytest.importorskip("skimage")
    raw, ref = real_sets
    agreement = _agreement_tool()
    sim = WienerSIM((112, 512), PX, 1.49, 510.0, offset_adu=60.0)
    sim.calibrate(raw[t])
    result = agreement(sim.reconstruct(raw[t]).astype(np.float64), ref)
    widefield = agreement(sim.widefield_upsampled(raw[t]).astype(np.float64), ref)
    full, highpass = PEER_AGREEMENT[t]
    assert result["full"] >= full and result["highpass"] >= highpass, result
    assert result["highpass"] > widefield["highpass"] + 0.15, (result, widefield)


def _simulate(
    shape=(112, 512),
    angles=(17.0, 77.0, 137.0),
    period_px=2.69,
    modulation=0.7,
    step_error_deg=0.0,
    brightness=20.0,
    gains=None,
    kind="er",
    seed=0,
    n_phases=3,
):
    """One raw set with known fringes: (raw, wavevectors in cycles/nm, phases per angle)."""
    rng = np.random.default_rng(seed)
    sample = make_sample(kind, (2 * shape[0], 2 * shape[1]), PX / 2, seed=seed, motion=False)
    patterns, ks, phases = [], [], []
    for angle in angles:
        theta = np.radians(angle)
        k = (np.sin(theta) / (period_px * PX), np.cos(theta) / (period_px * PX))
        start = rng.uniform(0, 2 * np.pi)
        errors = np.radians(rng.uniform(-step_error_deg, step_error_deg, n_phases))
        ph = start + 2 * np.pi * np.arange(n_phases) / n_phases + errors
        ks.append(k)
        phases.append(ph)
        patterns += [IlluminationPattern(components=((k[0], k[1], modulation, p),)) for p in ph]
    raw = simulate_sim_stack(
        sample.density(), patterns, pixel_nm_hi=PX / 2, brightness=brightness, rng=rng
    )
    if gains is not None:  # frames of uneven brightness (a drifting laser)
        raw = (100 + (raw.astype(np.float64) - 100) * np.asarray(gains)[:, None, None]).astype(
            np.uint16
        )
    return raw, ks, phases


def _check(params, ks, phases, step_tol_deg=10.0):
    for a, k in enumerate(ks):
        assert params.found[a], params.report()
        assert params.period_nm[a] == pytest.approx(1 / np.hypot(*k), rel=0.003)
        assert _angle_diff(params.angles_deg[a], np.degrees(np.arctan2(*k)) % 180) < 0.3
        err = np.angle(np.exp(1j * (np.diff(params.phases[a]) - np.diff(phases[a]))))
        assert np.degrees(np.abs(err)).max() < step_tol_deg, np.degrees(err)


def test_non_square_frames_any_orientation():
    raw, ks, phases = _simulate(shape=(112, 512), angles=(17.0, 77.0, 137.0))
    _check(estimate_sim_parameters(raw, PX, 1.49, 510.0), ks, phases)
    raw, ks, phases = _simulate(shape=(256, 128), angles=(95.0, 155.0, 35.0), seed=1)
    _check(estimate_sim_parameters(raw, PX, 1.49, 510.0), ks, phases)


@pytest.mark.parametrize("n_angles, n_phases", [(3, 5), (5, 5)])
def test_more_phases_and_angles(n_angles, n_phases):
    angles = tuple(10.0 + 180.0 * a / n_angles for a in range(n_angles))
    raw, ks, phases = _simulate(shape=(128, 256), angles=angles, n_phases=n_phases, seed=7)
    params = estimate_sim_parameters(raw, PX, 1.49, 510.0, n_angles=n_angles, n_phases=n_phases)
    assert params.phases.shape == (n_angles, n_phases)
    _check(params, ks, phases)
    sim = WienerSIM((128, 256), PX, 1.49, 510.0, n_angles=n_angles, n_phases=n_phases)
    sim.set_parameters(params)
    assert np.isfinite(sim.reconstruct(raw)).all()


def test_phase_steps_off_by_20_degrees_are_measured():
    raw, ks, phases = _simulate(step_error_deg=20.0, seed=2)
    steps = np.degrees(np.angle(np.exp(1j * np.diff(phases, axis=1))))
    assert np.abs(np.abs(steps) - 120).max() > 10  # the case is really uneven
    _check(estimate_sim_parameters(raw, PX, 1.49, 510.0), ks, phases)


def test_uneven_brightness_between_frames():
    gains = [1.0, 0.7, 1.3, 1.2, 0.8, 1.0, 0.6, 1.1, 1.4]
    raw, ks, phases = _simulate(gains=gains, seed=3)
    params = estimate_sim_parameters(raw, PX, 1.49, 510.0)
    _check(params, ks, phases)
    even = estimate_sim_parameters(_simulate(seed=3)[0], PX, 1.49, 510.0)
    assert np.abs(params.modulation - even.modulation).max() < 0.05


def test_low_modulation_is_found_and_measured():
    raw, ks, phases = _simulate(modulation=0.3, seed=4)
    params = estimate_sim_parameters(raw, PX, 1.49, 510.0)
    _check(params, ks, phases)
    high = estimate_sim_parameters(_simulate(modulation=0.9, seed=4)[0], PX, 1.49, 510.0)
    ratio = params.modulation / high.modulation
    assert np.all(np.abs(ratio - 0.3 / 0.9) < 0.08), (params.modulation, high.modulation)


def _photons_per_pixel(raw: np.ndarray) -> float:
    return float((raw.astype(np.float64) - 100).mean() * 0.46 / 0.8)  # sim camera: e⁻/ADU, QE


def test_at_10_photons_an_angle_is_found_correctly_or_reported_not_found():
    found = 0
    for seed, modulation in [(10, 0.7), (11, 0.3), (12, 0.15), (13, 0.08), (14, 0.04)]:
        raw, ks, _ = _simulate(modulation=modulation, brightness=1.2, kind="er", seed=seed)
        assert 5 < _photons_per_pixel(raw) < 20
        params = estimate_sim_parameters(raw, PX, 1.49, 510.0)
        for a, k in enumerate(ks):
            if params.found[a]:
                found += 1
                assert params.period_nm[a] == pytest.approx(1 / np.hypot(*k), rel=0.005)
                assert _angle_diff(params.angles_deg[a], np.degrees(np.arctan2(*k)) % 180) < 0.5
            else:
                assert params.source[a] == "none" and params.modulation[a] == 0.0
    assert 3 <= found < 15  # some found, and the faintest fringes honestly not


def test_no_fringe_is_never_found():
    for seed, kind in enumerate(["er", "microtubules", "vesicles"]):
        sample = make_sample(kind, (224, 1024), PX / 2, seed=seed, motion=False)
        raw = simulate_sim_stack(
            sample.density(),
            [IlluminationPattern()] * 9,
            brightness=1.5,
            rng=np.random.default_rng(seed),
        )
        params = estimate_sim_parameters(raw, PX, 1.49, 510.0)
        assert not params.found.any(), params.report()
        assert params.source == ("none",) * 3
        sim = WienerSIM((112, 512), PX, 1.49, 510.0)
        sim.set_parameters(params)
        sr = sim.reconstruct(raw)  # widefield information only: no invented side band
        spectrum = np.abs(np.fft.fft2(sr - sr.mean())) ** 2
        fy = np.fft.fftfreq(sr.shape[0], PX / 2)[:, None]
        fx = np.fft.fftfreq(sr.shape[1], PX / 2)[None, :]
        beyond = np.hypot(fy, fx) > 1.02 * 2 * 1.49 / 510.0
        assert spectrum[beyond].sum() < 1e-6 * spectrum.sum()


def test_nominal_pattern_is_the_fallback_for_an_angle_not_found():
    raw, _, _ = _simulate(modulation=0.7, seed=5)
    flat, _, _ = _simulate(modulation=0.0, seed=6)  # the same sample, no fringe
    frames = raw.copy()
    frames[0:3] = flat[0:3]  # angle 0 loses its fringe
    nominal = NominalPattern(period_nm=2.69 * PX, angles_deg=(17.0, 77.0, 137.0))
    params = estimate_sim_parameters(frames, PX, 1.49, 510.0, nominal=nominal)
    assert params.source == ("nominal", "estimated", "estimated")
    assert not params.found[0] and params.found[1:].all()
    blind = estimate_sim_parameters(frames, PX, 1.49, 510.0)
    assert blind.source[0] == "none" and blind.modulation[0] == 0.0
    assert "not found" in blind.summary()
