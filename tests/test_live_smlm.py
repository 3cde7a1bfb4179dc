"""Live SMLM (issue 18 item 4): localisation in the inference worker while bursts stream, the
growing rendering, the localisation table in the store, rolling drift correction, and the
density control loop on the simulated microscope (a real UniMMCore with our devices)."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from simulators.devices import hub_world
from simulators.smlm import simulate_smlm, uniform_emitters
from srlive.cli import main
from srlive.optimize.density import MAX_STEP, DensityTarget, next_activation
from srlive.pipeline.run_live import RunSettings, run_live
from srlive.recon.offline_smlm import read_localizations
from srlive.recon.smlm import SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.drift_live import RollingDrift
from srlive.recon.smlm.method import SMLMSettings
from srlive.recon.smlm.stream import SMLMReconstructor
from srlive.recon.smlm.table import Localizations
from srlive.storage import open_store

SMALL = [("SimHub", "FrameSize", "64"), ("SimHub", "Motion", "Off")]


def _smlm_run(tmp_path, frames: int, set_frames: int, **extra) -> tuple:
    """A headless live SMLM run; the simulated dyes' ground truth kept from the hub."""
    worlds = []
    settings = RunSettings(  # line and power: the profile's smlm defaults (640 nm, 140 mW)
        modality="smlm",
        frames=frames,
        set_frames=set_frames,
        properties=SMALL + extra.pop("properties", []),
        out=tmp_path / "smlm.zarr",
        **extra,
    )
    summary = run_live(
        settings,
        attach=lambda session: worlds.append(hub_world(session.profile.roles.simulator_hub)),
    )
    return summary, worlds[0]


def _by_t(table: dict) -> dict:
    order = np.argsort(table["t"])
    return {k: np.asarray(v)[order] for k, v in table.items()}


def test_live_localisation_stores_every_frame_the_table_and_the_growing_image(tmp_path):
    summary, world = _smlm_run(tmp_path, frames=3, set_frames=100, activation_mw=0.5)
    assert summary.complete and summary.lasers_on_at_end == []
    assert summary.raw_frames_acquired == summary.raw_frames_stored == 300
    assert summary.sr_images == 3 and summary.sr_skipped == 0  # every set localised
    series = tmp_path / "smlm.zarr" / "smlm"
    reader = open_store(series)
    locs = read_localizations(series)
    # the same localisations as localising the stored frames again (drift not yet estimated:
    # blocks of 500 frames)
    raw = reader.read_sets().reshape(-1, 64, 64)
    camera = reader.camera
    assert camera is not None
    again = localize(
        raw,
        SMLMOptics(pixel_nm=reader.pixel_nm, na=1.49, emission_nm=670.0),
        SMLMCamera(
            offset_adu=camera.offset_adu,
            e_per_adu=camera.e_per_adu,
            read_noise_e=camera.read_noise_e,
        ),
    )
    assert len(locs) == len(again) > 300
    np.testing.assert_allclose(np.sort(locs["x_nm"]), np.sort(again["x_nm"]), atol=1e-3)
    assert set(locs.columns) >= {"frame", "x_nm", "y_nm", "z_nm", "photons", "background"}
    assert np.isfinite(locs["uncertainty_nm"]).all() and (locs["photons"] > 0).all()
    assert locs["frame"].min() >= 0 and locs["frame"].max() < 300
    # the rendering grows: set t renders every localisation of sets 0..t (Gaussians that sum
    # to one each, a few cut by the frame's edge)
    rows = _by_t(reader.sr_table)
    totals = [reader.read_sr(t).sum() for t in range(3)]
    assert list(rows["localizations"]) == [
        int(np.count_nonzero(locs["frame"] < 100 * (t + 1))) for t in range(3)
    ]
    assert totals[0] < totals[1] < totals[2] == pytest.approx(len(locs), rel=0.02)
    assert reader.sr.shape[-1] == 64 * 6  # 65 nm / 6: the render pixel nearest 10 nm
    # the 405 nm activation line lit with the excitation, as the store and the dyes saw it
    assert np.allclose(reader.frames["power_mw_405"], 0.5)
    assert np.allclose(reader.frames["power_mw_640"], 140.0)
    assert {a for _, a, _, _ in world.smlm_dyes.log} == {0.5}
    assert summary.smlm["localizations"] == len(locs) and summary.smlm["locs_per_s"] > 0


def test_rolling_drift_follows_a_drifting_sample():
    """Localisations of a sample drifting 0.4 nm per frame along x and y (700 nm in all): the
    rolling window's estimate follows it within 35 nm (5 %; the first block is the reference:
    its pairs with the next blocks read 20-40 nm short on these 250-frame blocks, which the
    chain of later blocks inherits) and extrapolates it."""
    emitters = uniform_emitters(3000, (64 * 65.0, 64 * 65.0), seed=3)
    frames = 2000
    drift = np.outer(np.arange(frames), [0.4, 0.4])
    data = simulate_smlm(emitters, frames, activation_mw=1.0, drift_nm=drift, seed=4)
    locs = localize(data.frames, SMLMOptics(), SMLMCamera())
    rolling = RollingDrift((64, 64), 65.0, block_frames=250, window=3)
    for start in range(0, frames, 100):
        part = locs.in_frames(start, start + 100)
        rolling.add(Localizations(part.columns, 65.0, (64, 64), start + 100))
        assert rolling.blocks == (start + 100) // 250
    truth = np.array([(b + 0.5) * 250 * 0.4 for b in range(rolling.blocks)])
    estimate = np.asarray(rolling.drifts)
    assert np.abs(estimate - (truth - truth[0])[:, None]).max() < 35.0
    slope = np.polyfit(truth, estimate[:, 0], 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)
    # extrapolated to the next frames
    ahead = rolling.at(np.array([frames + 100]))[0]
    assert ahead == pytest.approx([(frames + 100 - 125) * 0.4] * 2, abs=45.0)


def test_density_control_step_is_bounded_and_within_the_limit():
    target = DensityTarget(per_um2=1.0, gain=0.5)
    assert next_activation(1.0, 4.0, target, 5.0) == pytest.approx(0.5)  # (1/4)^0.5
    assert next_activation(1.0, 0.25, target, 5.0) == pytest.approx(2.0)
    assert next_activation(4.0, 0.0, target, 5.0) == 5.0  # nothing seen: up, to the limit
    assert next_activation(0.0, 0.5, target, 5.0) == pytest.approx(0.05 * math.sqrt(2))
    assert next_activation(1.0, 1e-6, target, 5.0) == MAX_STEP * 1.0
    assert next_activation(2.0, math.nan, target, 5.0) == 2.0  # unknown: unchanged


def test_density_control_holds_the_target_as_the_sample_bleaches(tmp_path):
    """2,000 frames (20 sets of 100): the density of localisations per set stays within
    ±20 % of the target once settled, while the dyes bleach and the activation rises; the
    405 nm laser never gave more than the profile's 5 mW (the light the simulated dyes got in
    every exposure, from the laser device's state)."""
    worlds = []
    settings = RunSettings(
        modality="smlm",
        line=640,
        power_mw=140.0,
        frames=20,
        set_frames=100,
        properties=SMALL,
        out=tmp_path / "dc.zarr",
        activation_mw=0.5,
        target_density=2.0,
    )

    def attach(session) -> None:
        worlds.append(hub_world(session.profile.roles.simulator_hub))

    summary = run_live(settings, attach=attach)
    assert summary.complete and summary.raw_frames_stored == 2000 and summary.sr_skipped == 0
    assert summary.lasers_on_at_end == []
    rows = _by_t(open_store(tmp_path / "dc.zarr" / "smlm").sr_table)
    density = np.asarray(rows["density_per_um2"])
    settled = density[3:]  # from the 4th set on (the first sets pull the power up)
    log = np.asarray(worlds[0].smlm_dyes.log)  # excitation, activation, seen, surviving
    assert np.all(np.abs(settled / 2.0 - 1.0) <= 0.2), density.round(2)
    # every exposure the dyes saw (the camera runs a few frames past a set boundary where the
    # activation changes; those are not delivered)
    assert 2000 <= len(log) <= 2000 + 20 * 5
    stored = open_store(tmp_path / "dc.zarr" / "smlm").frames["power_mw_405"]
    assert log[:, 1].max() <= 5.0 and stored.max() <= 5.0 and log[:, 1].min() > 0.0
    assert log[-1, 3] < 0.8  # a fifth of the dyes or more bleached...
    early, late = log[300:600, 1].mean(), log[-200:, 1].mean()
    assert late > 1.2 * early  # ...and the activation rose to make up for them
    steps = summary.smlm["density_control"]["steps"]
    assert len(steps) == 20 and all(s["next_mw"] <= 5.0 for s in steps)


def test_run_command_smlm_refuses_bad_input(tmp_path, capsys):
    base = ["run", "--headless", "--modality", "smlm", "--out", str(tmp_path / "x.zarr")]
    assert main([*base, "--target-density", "-1"]) == 2
    assert "--target-density must be more than 0" in capsys.readouterr().err
    assert main([*base, "--activation-mw", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert "405 nm power 50 mW is outside the profile limit" in err and "\n" not in err
    assert main(["run", "--headless", "--modality", "sim9", "--target-density", "1"]) == 2
    assert "--target-density: only for --modality smlm" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_the_reconstructor_in_a_child_gives_the_parent_its_table():
    """What the inference child sends back per set rebuilds the same table in the parent."""
    emitters = uniform_emitters(800, (64 * 65.0, 64 * 65.0), seed=1)
    data = simulate_smlm(emitters, 120, activation_mw=1.0, seed=2)
    child = SMLMReconstructor((64, 64), SMLMOptics(), SMLMCamera(), SMLMSettings())
    parent = SMLMReconstructor(*child.spec[1])
    for start in (0, 60):
        image, _ = child(data.frames[start : start + 60])
        parent.absorb_child(child.child_extra())
    assert parent.count == child.count == len(parent.localizations()) > 50
    assert parent.sr_row() == child.sr_row() and parent.frames_seen == 120
    assert image.sum() == pytest.approx(child.count, rel=0.02)


def test_stopping_mid_set_turns_the_activation_line_off_too(scope, tmp_path):
    """The 405 nm line is lit with the excitation in every SMLM frame, and goes off with it
    when a run is aborted in the middle of a set (the device's state, read back)."""
    from srlive.pipeline.session import LiveSession, LiveSettings

    scope.core.setProperty("SimHub", "FrameSize", 64)
    power = {405: 0.8, 488: 0.0, 561: 0.0, 640: 140.0}
    session = LiveSession(
        scope, LiveSettings("smlm", 640, 10.0, power), tmp_path / "a.zarr", smlm_frames=200
    )
    world = hub_world("SimHub")
    try:
        session.start(None)
        while session.engine.stats.frames_acquired < 20:
            assert session.wait(0.01) is False
        assert world.lasers[405].on and world.lasers[640].on
        session.abort()
        assert session.wait(10.0)
        assert not scope.laser_is_on(405) and not scope.laser_is_on(640)
        assert not world.lasers[405].on and not world.lasers[640].on
    finally:
        summary = session.close(complete=False)
    assert summary.lasers_on_at_end == [] and summary.raw_frames_dropped > 0


def test_latest_wins_policy_keeps_every_set_offered_with_keep():
    """Live runs skip to the newest set, except sets offered with ``keep`` (localisation):
    those wait their turn, in order, while the worker is busy."""
    from types import SimpleNamespace

    from srlive.pipeline.worker import InferenceWorker

    gate, done, skipped = threading.Event(), [], []
    worker = InferenceWorker(
        lambda slot: gate.wait(10) and slot.name,
        lambda slot, result: done.append(result),
        lambda slot: skipped.append(slot.name),
        lambda slot, exc: None,
        policy="latest",
    )

    def slot(name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, about=SimpleNamespace(stamps={}, t=0))

    try:
        worker.offer(slot("busy"), keep=True)
        while not worker.busy:
            time.sleep(0.001)
        for name in ("a", "b", "c"):
            worker.offer(slot(name), keep=True)
        worker.offer(slot("x"))  # not kept: replaced by the next one
        worker.offer(slot("y"))
        gate.set()
    finally:
        worker.stop(drain=True, timeout=10)
    assert done == ["busy", "a", "b", "c", "y"] and skipped == ["x"]


def test_run_command_smlm_headless_json(tmp_path, capsys):
    """``srlive run --modality smlm``: the profile's SMLM line and power, the summary's figures."""
    import json

    out = tmp_path / "cli.zarr"
    args = ["run", "--headless", "--json", "--modality", "smlm", "--frames", "2"]
    args += ["--set-frames", "50", "--activation-mw", "0.5", "--out", str(out)]
    args += ["--set", "SimHub.FrameSize=64", "--set", "SimHub.Motion=Off"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["raw_frames_stored"] == 100 and summary["sr_images"] == 2
    assert summary["smlm"]["localizations"] == len(read_localizations(out / "smlm")) > 20
    frames = open_store(out / "smlm").frames
    assert np.allclose(frames["power_mw_640"], 140.0) and np.allclose(frames["power_mw_405"], 0.5)
