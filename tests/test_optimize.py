"""The learned parameter optimizer: metrics, learning, safety, storage, threading."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from simulators.camera_model import CameraModel
from simulators.devices import SimCamera
from simulators.world import SimulatedWorld
from srlive.optimize.advisors import SeriesAdvisor
from srlive.optimize.decision import Decision
from srlive.optimize.optimizer import Optimizer, SearchSpace
from srlive.optimize.prior import load_prior
from srlive.optimize.store import read_records, read_table
from srlive.pipeline.run_protocol import acquire
from srlive.recon.set_metrics import (
    NoiseModel,
    fit_bleaching,
    motion_px,
    set_metrics,
    snr,
)

SMALL = [("SimHub", "FrameSize", "64"), ("SimHub", "Motion", "Off")]


def test_signal_and_snr_follow_the_camera_noise_model():
    camera, rng = CameraModel(), np.random.default_rng(0)
    photons = np.zeros((64, 64), np.float32)
    photons[20:40, 20:40] = 200.0
    frames = np.stack([camera.expose(photons, 10.0, rng) for _ in range(9)])
    noise = NoiseModel(camera.offset_adu, camera.e_per_adu, camera.read_noise_e)
    metrics, _ = set_metrics(frames, noise, power_mw=10.0, exposure_ms=2.0)
    assert metrics["signal_e"] == pytest.approx(camera.qe * 200.0, rel=0.05)
    assert metrics["brightness"] == pytest.approx(camera.qe * 200.0 / 20.0, rel=0.05)
    assert metrics["snr"] == pytest.approx(snr(160.0, 0.0, 1.6), rel=0.05)
    assert metrics["saturated_fraction"] == 0.0
    saturated = frames.copy()
    saturated[:, :32] = 65535
    assert set_metrics(saturated, noise, 10.0, 2.0)[0]["saturated_fraction"] == pytest.approx(0.5)


def test_bleaching_fit_and_motion_estimate():
    dose = np.linspace(0, 100, 20)
    k_true = math.log(2) / 40
    brightness = (
        3.0 * np.exp(-k_true * dose) * (1 + 0.01 * np.random.default_rng(1).normal(size=20))
    )
    k, b0 = fit_bleaching(dose, brightness)
    assert k == pytest.approx(k_true, rel=0.05) and b0 == pytest.approx(3.0, rel=0.05)
    assert fit_bleaching(dose[:1], brightness[:1])[0] == 0.0
    img = np.random.default_rng(2).random((64, 64))
    assert motion_px(img, np.roll(img, (3, -4), axis=(0, 1))) == pytest.approx(5.0, abs=0.3)
    assert motion_px(None, img) == 0.0


def _space() -> SearchSpace:
    return SearchSpace(488, 0.2, 200.0, 1.0, 100.0, 10.0, {"sim9": 9}, 0.64)


def _simulate(optimizer: Optimizer, steps: int, beta: float, k: float) -> list[dict]:
    """A synthetic sample: signal = power × exposure × brightness, bleaching with dose."""
    power, exposure, dose, decisions = 20.0, 10.0, 0.0, []
    for t in range(steps):
        signal = power * exposure * beta * math.exp(-k * dose)
        metrics = {
            "signal_e": signal,
            "background_e": 0.0,
            "snr": snr(signal, 0.0, 1.6),
            "brightness": signal / (power * exposure),
            "saturated_fraction": 0.0,
        }
        optimizer.observe(t, power, exposure, "sim9", metrics, dose)
        dose += power * exposure * 9 / 1000
        decision = optimizer.decide(t + 1)
        decisions.append(decision)
        assert optimizer.space.contains(
            decision["power_mw"], decision["exposure_ms"], decision["modality"]
        )
        power, exposure = decision["power_mw"], decision["exposure_ms"]
    return decisions


def test_optimizer_learns_the_cheaper_setting_for_this_sample():
    prior = load_prior()
    curve = prior.curve("sim9")
    optimizer = Optimizer(_space(), prior, goal="min-dose-at-quality", target_quality=0.7, seed=3)
    decisions = _simulate(optimizer, 15, beta=2.0, k=0.0)
    # the least light that reaches the target on this (bright) sample, from the curve itself
    light = np.geomspace(1, 2000, 4000)
    needed = light[np.argmax(curve(np.array([snr(x * 2.0, 0, 1.6) for x in light])) >= 0.7)]
    final = decisions[-1]["power_mw"] * decisions[-1]["exposure_ms"]
    assert final < 0.5 * 200.0  # it moved away from the protocol's 20 mW × 10 ms
    assert needed * 0.8 <= final <= needed * 1.5
    assert all(d["reason"] for d in decisions)


def test_optimizer_compensates_bleaching_and_respects_the_budget():
    prior = load_prior()
    optimizer = Optimizer(_space(), prior, goal="min-dose-at-quality", target_quality=0.7, seed=4)
    decisions = _simulate(optimizer, 30, beta=0.5, k=math.log(2) / 30)
    first, last = decisions[5]["power_mw"], decisions[-1]["power_mw"]
    assert last > 1.3 * first  # the sample is dimmer: more light for the same quality
    assert decisions[-1]["bleach_k_per_mj"] == pytest.approx(math.log(2) / 30, rel=0.2)
    tight = optimizer.decide(31, remaining_budget_mj=0.05)
    assert tight["power_mw"] is None or (
        tight["power_mw"] * tight["exposure_ms"] * 9 / 1000 <= 0.05 + 1e-12
    )
    assert optimizer.decide(32, remaining_budget_mj=0.0)["power_mw"] is None


def test_fluorescence_reserve_stops_the_light_chasing_a_fast_bleaching_sample():
    prior = load_prior()
    goal = {"goal": "min-dose-at-quality", "target_quality": 0.7, "n_timepoints": 40}
    capped = Optimizer(_space(), prior, seed=5, **goal)
    free = Optimizer(_space(), prior, seed=5, fluorescence_reserve=0.0, **goal)
    k = math.log(2) / 5.0  # half the fluorescence is gone after 5 mJ
    capped_decisions = _simulate(capped, 40, beta=0.5, k=k)
    _simulate(free, 40, beta=0.5, k=k)
    # chasing the target burns the sample out; the reserve keeps about 10 % of it to the end
    assert math.exp(-k * free.dose_mj) < 0.05
    assert math.exp(-k * capped.dose_mj) >= 0.08
    assert any("capped" in d["reason"] for d in capped_decisions)
    # a sample already below its reserve gets the least light there is
    step, pace = capped.reserve_caps_mj(k, 10)
    assert step > 0 and pace == pytest.approx(step / 10)
    capped._dose_mj = 30.0  # 1.6 % left
    assert capped.reserve_caps_mj(k, 10) == (0.0, 0.0)
    least = capped.decide(41, remaining_timepoints=10)
    space = capped.space
    assert least["power_mw"] * least["exposure_ms"] == pytest.approx(
        space.min_power_mw * space.min_exposure_ms, rel=0.05
    )


def test_bad_goal_is_one_line():
    with pytest.raises(ValueError, match="unknown optimizer goal"):
        Optimizer(_space(), load_prior(), goal="fastest")
    with pytest.raises(ValueError, match="unknown optimizer policy"):
        Optimizer(_space(), load_prior(), policy="sometimes")


def test_steady_policy_learns_then_holds_one_planned_setting():
    prior = load_prior()
    goal = {"goal": "min-dose-at-quality", "target_quality": 0.7, "n_timepoints": 60}
    steady = Optimizer(_space(), prior, seed=6, policy="steady", steady_after=12, **goal)
    k = math.log(2) / 400.0  # slow bleaching: one setting can serve the whole timelapse
    decisions = _simulate(steady, 59, beta=0.5, k=k)
    held = {(d["power_mw"], d["exposure_ms"]) for d in decisions[11:]}
    assert len(held) == 1  # decided at t = 12 and held to the end
    assert len({(d["power_mw"], d["exposure_ms"]) for d in decisions[:11]}) > 1  # it learned
    plan = decisions[11]
    assert plan["reason"].startswith("steady: holding the setting planned at t=12")
    # the plan expects the target at (nearly) every remaining timepoint, and the setting
    # it holds is the light the sample needs at the end, not at the start
    assert plan["predicted_good_timepoints"] >= 0.95 * plan["planned_horizon"]
    adaptive = Optimizer(_space(), prior, seed=6, **goal)
    first_adaptive = _simulate(adaptive, 20, beta=0.5, k=k)[-1]
    held_light = plan["power_mw"] * plan["exposure_ms"]
    assert held_light >= first_adaptive["power_mw"] * first_adaptive["exposure_ms"] * 0.95
    # safety overrides a held setting: a budget it no longer fits gets less light
    tight = steady.decide(60, remaining_budget_mj=0.5 * plan["predicted_dose_mj"])
    assert tight["power_mw"] * tight["exposure_ms"] * 9 / 1000 <= 0.5 * plan["predicted_dose_mj"]
    assert "no longer fits" in tight["reason"]


@pytest.fixture
def received(monkeypatch):
    """Every laser power and exposure the simulated devices were given (real devices)."""
    log: dict[str, list[float]] = {"power": [], "exposure": []}
    set_laser, set_exposure = SimulatedWorld.set_laser, SimCamera.set_exposure

    def record_laser(self, line, *, power_mw=None, on=None, gated=None):
        if power_mw is not None:
            log["power"].append(float(power_mw))
        return set_laser(self, line, power_mw=power_mw, on=on, gated=gated)

    def record_exposure(self, exposure):
        log["exposure"].append(float(exposure))
        return set_exposure(self, exposure)

    monkeypatch.setattr(SimulatedWorld, "set_laser", record_laser)
    monkeypatch.setattr(SimCamera, "set_exposure", record_exposure)
    return log


def _protocol(tmp_path: Path, optimizer: dict, loops: int = 10, budget: float = 50.0) -> Path:
    path = tmp_path / "optimized.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mda": {
                    "time_plan": {"interval": 0, "loops": loops},
                    "channels": [{"config": "488"}],
                },
                "srlive": {
                    "channels": {"488": {"modality": "sim9", "power_mw": 20, "exposure_ms": 5}},
                    "dose_budget_mj": budget,
                    "optimizer": {"enabled": True, **optimizer},
                },
            }
        )
    )
    return path


@pytest.mark.parametrize("policy", ["adaptive", "steady"])
def test_optimized_acquisition_stays_in_limits_stores_decisions_off_thread(
    tmp_path, received, profile, policy
):
    # a very dim sample and an unreachable target drive the optimizer towards ever more
    # light, then the dose budget binds: limits and budget must hold throughout
    path = _protocol(
        tmp_path,
        {
            "goal": "min-dose-at-quality",
            "target_quality": 0.99,
            "max_power_mw": 60,
            "decision_timeout_s": 5.0,
            "policy": policy,
            "steady_after": 4,
        },
        loops=10,
        budget=6.0,
    )
    seen: list[tuple[Decision, str]] = []
    summary = acquire(
        path,
        out=tmp_path / "out.zarr",
        properties=[*SMALL, ("SimHub", "BrightnessPhotonsPerMWms", "0.05")],
        on_decision=lambda d: seen.append((d, threading.current_thread().name)),
    )
    assert summary.lasers_on_at_end == []
    limits = profile.limits
    assert received["power"] and received["exposure"]
    assert max(received["power"]) <= min(60.0, limits.max_power_mw[488]) + 1e-9
    assert max(received["power"]) > 30.0  # it did explore up towards its cap
    if policy == "steady":  # one setting from timepoint 4 on (none reaches the target)
        assert any(d.reason.startswith("steady:") for d, _ in seen)
    assert min(received["exposure"]) >= limits.min_exposure_ms
    assert max(received["exposure"]) <= limits.max_exposure_ms
    assert summary.dose_mj["0"] <= 6.0 + 1e-9  # the budget is never exceeded
    # decisions were made on the optimizer's worker, not on the acquisition (this) thread
    worker_decisions = [d for d, _ in seen if d.decision_ms is not None]
    assert worker_decisions
    assert all(name.startswith("srlive-optimizer") for d, name in seen if d.decision_ms)
    assert threading.current_thread().name not in {d.details["thread"] for d in worker_decisions}
    # ... and stored with the data, readable
    table = read_table(tmp_path / "out.zarr" / "p0_c488")
    sets = summary.series["p0_c488"].sets
    assert len(table["t"]) == sets and list(table["t"]) == list(range(sets))
    assert table["reason"][0].startswith("initial")
    assert np.all(table["applied_power_mw"] <= 60.0 + 1e-9)
    records = read_records(tmp_path / "out.zarr" / "p0_c488")
    assert records[1]["observed"]["t"] == 0 and "snr" in records[1]["observed"]
    metrics = read_table(tmp_path / "out.zarr" / "p0_c488", "optimizer_metrics")
    assert len(metrics["snr"]) >= sets - 1 and np.isfinite(metrics["signal_e"]).all()
    assert summary.optimizer["p0_c488"]["errors"] == []


def test_decision_late_keeps_previous_setting(tmp_path, monkeypatch):
    """A decision that misses its deadline: the previous setting is kept and logged late."""
    original = SeriesAdvisor.observe

    def slow(self, metrics, sr):
        threading.Event().wait(0.5)
        return original(self, metrics, sr)

    monkeypatch.setattr(SeriesAdvisor, "observe", slow)
    path = _protocol(tmp_path, {"goal": "min-dose-at-quality", "decision_timeout_s": 0.0}, loops=3)
    summary = acquire(path, out=tmp_path / "late.zarr", properties=SMALL)
    table = read_table(tmp_path / "late.zarr" / "p0_c488")
    assert summary.optimizer["p0_c488"]["late"] >= 1
    late = np.nonzero(table["late"] == 1)[0]
    assert late.size and late.min() >= 1
    power, exposure = table["applied_power_mw"], table["applied_exposure_ms"]
    assert np.all(power[late] == power[late - 1]) and np.all(exposure[late] == exposure[late - 1])


def test_goals_pace_the_budget_and_prefer_short_sets():
    prior = load_prior()
    within = Optimizer(_space(), prior, goal="quality-within-budget", seed=5)
    _simulate(within, 3, beta=2.0, k=0.0)
    paced = within.decide(4, remaining_budget_mj=1.0, remaining_timepoints=10)
    assert paced["power_mw"] * paced["exposure_ms"] * 9 / 1000 <= 0.1 + 1e-12
    rate = Optimizer(_space(), prior, goal="max-rate-at-quality", target_quality=0.6, seed=6)
    decisions = _simulate(rate, 12, beta=2.0, k=0.0)
    assert decisions[-1]["exposure_ms"] == pytest.approx(_space().min_exposure_ms)


def test_live_run_with_the_optimizer_stays_in_limits_and_stores_its_decisions(
    tmp_path, received, profile
):
    from srlive.cli import main

    out = tmp_path / "live.zarr"
    args = ["run", "--headless", "--frames", "25", "--optimize", "--out", str(out)]
    for label, prop, value in SMALL:
        args += ["--set", f"{label}.{prop}={value}"]
    assert main(args) == 0
    records = read_records(out / "sim9")  # the series the decisions were made for
    assert records, "the optimizer made no decision in 25 sets"
    # the default 20 mW is far more light than this bright sample needs at the default
    # target: the optimizer turned the power down, within the profile's limits
    assert received["power"][-1] < profile.defaults.power_mw
    assert max(received["power"]) <= profile.limits.max_power_mw[488]
    assert all(0 < r["power_mw"] <= profile.limits.max_power_mw[488] for r in records)
    assert all(r["reason"] for r in records)
    assert np.array_equal(read_table(out / "sim9")["t"], [r["t"] for r in records])
