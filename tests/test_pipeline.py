"""The streaming pipeline on the simulated microscope: ring buffer, latest wins, lossless raw
storage, latency stamps, inference in a child process, metrics."""

from __future__ import annotations

import math
import os
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from simulators.camera_model import CameraModel
from srlive.acquisition.engine import Engine
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.acquisition.plan import repeated_sets
from srlive.errors import SafetyError
from srlive.optimize.decision import Decision
from srlive.pipeline.cpus import (
    allowed,
    lower_current_thread_priority,
    partition,
    pin_current_thread,
)
from srlive.pipeline.latency import STAGES, LatencyTracker, intervals_ms, ordered
from srlive.pipeline.process import InferenceProcess
from srlive.pipeline.ring import SetRing
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.pipeline.signal_tracker import SignalTracker
from srlive.recon.set_metrics import NoiseModel, SetMetrics
from srlive.recon.streaming import ModelReconstructor
from srlive.storage import open_store


class RingSink:
    """The engine's FrameSink over a SetRing, releasing each set once it has been seen."""

    def __init__(self, ring: SetRing) -> None:
        self.ring = ring

    def claim(self, plan):
        return self.ring.claim(plan.n_frames).frames

    def abandon(self, frames):
        self.ring.release(self.ring.slot_of(frames))


def test_ring_reuses_its_slots_and_waits_when_all_are_held() -> None:
    ring = SetRing(3, 9, (16, 16))
    buffer_id = id(ring.buffer)
    seen = []
    for i in range(10):
        slot = ring.claim(3 if i % 2 else 9)
        assert np.shares_memory(slot.frames, ring.buffer)
        assert slot.frames.shape == ((3 if i % 2 else 9), 16, 16)
        seen.append(slot.index)
        ring.retain(slot, 2)  # two readers
        ring.release(slot)  # the producer
        ring.release(slot)
        ring.release(slot)
    assert set(seen) <= {0, 1, 2} and ring.claims == 10
    assert id(ring.buffer) == buffer_id and ring.free_count() == 3
    held = [ring.claim(1) for _ in range(3)]
    with pytest.raises(TimeoutError):
        ring.claim(1, timeout=0.05)
    assert ring.waits == 1
    threading.Timer(0.05, ring.release, args=(held[1],)).start()
    assert ring.claim(1, timeout=5).index == held[1].index  # the released slot, reused
    with pytest.raises(ValueError, match="does not fit"):
        ring.claim(10)
    ring.release(held[0])
    with pytest.raises(RuntimeError, match="released more often"):
        ring.release(held[0])


def test_engine_copies_frames_into_ring_slots(scope) -> None:
    ring = SetRing(3, 9, scope.frame_shape)
    engine = Engine(scope, sink=RingSink(ring))
    sim9 = get_modality("sim9")
    images = tuple(slm_images(scope.profile, sim9, 488, scope.slm_shape))
    slots = []

    def on_set(plan, frames, metas):
        slot = ring.slot_of(frames)
        assert np.shares_memory(frames, ring.buffer)  # the set is in the ring, not a new array
        for frame, meta in zip(frames, metas, strict=True):  # intact: the camera's own CRC
            assert zlib.crc32(np.ascontiguousarray(frame)) == int(meta["camera_crc"])
        slots.append(slot.index)
        ring.release(slot)

    engine.events.set_complete.connect(on_set)
    stats = engine.run(repeated_sets(sim9, 488, 20.0, 1.0, images, 7))
    assert stats.sets_completed == 7 and stats.frames_dropped == 0
    assert len(set(slots)) < 7 and ring.claims == 7  # slots are reused
    assert ring.free_count() == 3


def _session(scope, tmp_path: Path, modality: str = "sim3", **kw) -> LiveSession:
    line = 488
    settings = LiveSettings(modality, line, kw.pop("exposure_ms", 0.1), {line: 20.0})
    return LiveSession(scope, settings, tmp_path / "live.zarr", **kw)


def test_latest_wins_raw_lossless_skips_recorded_latency_ordered(scope, tmp_path) -> None:
    """dl-sim3 is slower than the camera here: sets are skipped, never raw frames, and
    the newest set wins (however many results the machine's speed allows on the way)."""
    session = _session(scope, tmp_path, inference="thread", threads=1)
    results = []
    session.events.result.connect(results.append)
    try:
        session.start(40)
        assert session.wait(120)
        deadline = time.time() + 60
        while not any(r.t == 39 for r in results) and time.time() < deadline:  # in flight
            time.sleep(0.01)
        shown = results[:2]
        for r in shown:
            session.mark_displayed(r)
    finally:
        summary = session.close()
    assert summary.raw_frames_acquired == 120
    assert summary.raw_frames_stored == 120 and summary.raw_frames_dropped == 0
    assert summary.sr_skipped > 0  # the model is slower than 3 frames at 0.1 ms
    assert summary.sr_images + summary.sr_skipped == 40
    assert summary.lasers_on_at_end == []
    store = open_store(tmp_path / "live.zarr")
    status = store.sr_status()
    assert sorted(status) == list(range(40)) and status[39] == "reconstructed"
    assert list(status.values()).count("skipped") == summary.sr_skipped
    ts = [r.t for r in results]
    assert ts == sorted(set(ts)) and ts[-1] == 39  # in order, each once, the last set last
    assert {t for t, s in status.items() if s == "reconstructed"} == set(ts)
    for t, state in status.items():
        assert np.isnan(store.read_sr(t)).all() == (state == "skipped")
    # every stored raw frame is the frame the camera made
    raw = np.asarray(store.raw[:]).reshape(-1, *store.raw.shape[-2:])
    crcs = [zlib.crc32(np.ascontiguousarray(f)) for f in raw]
    assert crcs == store.frames["camera_crc"].astype(np.int64).tolist()
    # latency stamps: every stage in order, exposure end from the camera's frame time
    assert results and all(ordered(r.stamps) for r in results)
    for r in results:
        assert set(STAGES[:4]) <= set(r.stamps)
        assert r.latency_ms["to_result"] >= r.latency_ms["inference"] > 0
    assert shown and all("displayed" in r.stamps for r in shown)
    assert np.all(store.frames["exposure_end_s"] <= store.frames["time_s"])
    assert np.all(np.diff(store.frames["exposure_end_s"]) > 0)
    lat = summary.pipeline["latency_ms"]
    assert lat["to_result"]["n"] == len(results) and lat["to_display"]["n"] == len(shown)


def test_the_model_is_loaded_only_in_the_inference_process(scope, tmp_path) -> None:
    from srlive.recon.learned import infer

    cached = set(infer._CACHE)  # models earlier tests loaded in this process
    session = _session(scope, tmp_path, threads=1)  # inference="process", the default
    try:
        session.start(3)
        assert session.wait(300)
        recon = session.writer.series["sim3"].recon
    finally:
        summary = session.close()
    assert summary.sr_images >= 1
    assert isinstance(recon, ModelReconstructor) and recon.upscale == 2
    assert not recon.loaded  # the parent read the weights' header only
    assert set(infer._CACHE) == cached  # nor did anything else here load a model


def test_inference_process_matches_in_process_reconstruction(scope) -> None:
    ring = SetRing(2, 3, scope.frame_shape, shared=True)
    sim3 = get_modality("sim3")
    images = tuple(slm_images(scope.profile, sim3, 488, scope.slm_shape))
    engine = Engine(scope, sink=RingSink(ring))
    kept = []
    engine.events.set_complete.connect(
        lambda plan, frames, metas: (ring.retain(ring.slot_of(frames)), kept.append(frames))
    )
    engine.run(repeated_sets(sim3, 488, 20.0, 1.0, images, 1))
    recon = ModelReconstructor("dl-sim3", scope.camera_offset_adu, device="cpu")
    expected, confidence = recon(kept[0])
    proc = InferenceProcess(ring.shm_name, ring.buffer.shape, threads=1)
    try:
        slot = ring.slot_of(kept[0])
        image, conf, ms = proc.reconstruct(recon, slot.index, slot.n_frames)
        image2, _, _ = proc.reconstruct(recon, slot.index, slot.n_frames)  # built once
    finally:
        proc.close()
        ring.close()
    assert ms > 0 and proc.result_size >= image.size
    np.testing.assert_allclose(image, expected, rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(image, image2)
    assert conf == pytest.approx(confidence, rel=1e-3)


def test_session_settings_pass_limits_and_reach_the_core(scope, tmp_path) -> None:
    session = _session(scope, tmp_path, modality="widefield", exposure_ms=2.0)
    core = scope.core
    try:
        with pytest.raises(SafetyError):
            session.set_power(488, 500.0)  # above the profile's 200 mW
        with pytest.raises(SafetyError):
            scope.set_power(488, 500.0)  # the role object refuses too
        with pytest.raises(SafetyError):
            session.set_exposure(0.01)
        assert float(core.getProperty("Laser488", "PowerMW")) <= 200
        session.set_exposure(3.0)  # idle: applied at once
        session.set_power(561, 7.5)
        assert core.getExposure() == pytest.approx(3.0)
        assert float(core.getProperty("Laser561", "PowerMW")) == pytest.approx(7.5)
        session.start(None)
        while session.pipeline.stats.raw_sets_stored < 3:
            time.sleep(0.01)
        session.set_power(488, 5.0)  # running: applied at the next set boundary
        session.set_exposure(1.5)
        deadline = time.time() + 30
        while session.settings.power != 5.0 and time.time() < deadline:
            time.sleep(0.01)
        n = session.pipeline.stats.raw_sets_stored
        while session.pipeline.stats.raw_sets_stored < n + 3:
            time.sleep(0.01)
        assert float(core.getProperty("Laser488", "PowerMW")) == pytest.approx(5.0)
        session.stop()
        assert session.wait(30)
        assert session.engine.stats.frames_dropped == 0  # Stop waits for the set to complete
        assert not any(scope.laser_is_on(line) for line in scope.profile.laser_lines)
        assert not core.getSLMImage("SLM").any()
    finally:
        session.close()
    table = open_store(tmp_path / "live.zarr").frames
    assert set(np.unique(table["power_mw_488"])) == {5.0, 20.0}
    assert set(np.unique(table["exposure_ms"])) == {1.5, 3.0}
    later = table["power_mw_488"] == 5.0
    assert np.all(table["exposure_ms"][later] == 1.5)  # both applied at the same set boundary


class StepOptimizer:
    """A stand-in advisor: proposes a fixed list of powers, one per set."""

    def __init__(self, powers: list[float]) -> None:
        self.powers = list(powers)
        self.observed: list[SetMetrics] = []

    def warm_up(self) -> None:
        pass

    def observe(self, metrics: SetMetrics, sr: object = None) -> None:
        self.observed.append(metrics)

    def propose(self, metrics: SetMetrics) -> Decision | None:
        if not self.powers:
            return None
        power = self.powers.pop(0)
        return Decision(metrics.t + 1, metrics.series, power, 2.0, None, "test step")


def test_optimizer_decisions_are_applied_within_limits(scope, tmp_path) -> None:
    opt = StepOptimizer([10.0, 900.0, 15.0])  # 900 mW is over the limit: must be refused
    session = _session(scope, tmp_path, modality="widefield", exposure_ms=2.0, optimizer=opt)
    session.pipeline.metrics_interval_s = 0.0
    decisions, errors = [], []
    session.events.decision.connect(decisions.append)
    session.events.status.connect(lambda msg, err: errors.append(msg) if err else None)
    try:
        session.set_optimizer_enabled(True)
        session.start(60)
        assert session.wait(60)
    finally:
        session.close()
    assert [d.power_mw for d in decisions] == [10.0, 15.0]
    assert all(d.t is not None and d.reason == "test step" for d in decisions)
    assert any("900" in e and "refused" in e for e in errors)
    powers = set(np.unique(open_store(tmp_path / "live.zarr").frames["power_mw_488"]))
    assert powers <= {20.0, 10.0, 15.0} and 900.0 not in powers
    first = opt.observed[0]
    assert first.series == "widefield" and first.signal > 0 and first.surviving_fraction == 1.0


def test_each_modality_is_a_series_of_the_run_store(scope, tmp_path) -> None:
    session = _session(scope, tmp_path, modality="widefield", exposure_ms=1.0)
    try:
        session.snap()
        assert session.wait(30)
        session.set_modality("sim9")
        session.snap()
        assert session.wait(60)
    finally:
        summary = session.close()
    assert summary.raw_frames_stored == summary.raw_frames_acquired == 10
    root = zarr.open_group(str(tmp_path / "live.zarr"), mode="r")
    assert root["widefield/raw/0"].shape[:2] == (1, 1) and root["sim9/raw/0"].shape[:2] == (1, 9)
    assert open_store(tmp_path / "live.zarr" / "sim9").sr_status() == {0: "reconstructed"}
    assert summary.complete and root.attrs["srlive"]["series"] == ["sim9", "widefield"]


def test_signal_tracker_follows_brightness_and_bleaching() -> None:
    camera, rng = CameraModel(), np.random.default_rng(0)
    noise = NoiseModel(camera.offset_adu, camera.e_per_adu, camera.read_noise_e)
    structure = np.zeros((128, 128), np.float32)
    structure[40:80, 40:80] = 1.0  # photons per mW·ms

    def frames(light: float, left: float) -> np.ndarray:
        return np.stack([camera.expose(structure * light * left, 10.0, rng) for _ in range(3)])

    tracker = SignalTracker(noise)
    first = tracker.update("s", "sim3", 0, 0.0, frames(200.0, 1.0), 20.0, 10.0)
    assert first.signal == pytest.approx(camera.qe * 200.0, rel=0.05)
    assert first.surviving_fraction == pytest.approx(1.0)
    assert first.snr == pytest.approx(160.0 / math.sqrt(160.0 + 1.6**2), rel=0.1)
    # half the power x exposure and 80% of the fluorophores left: 0.4 x the signal
    later = tracker.update("s", "sim3", 1, 1.0, frames(100.0, 0.8), 10.0, 10.0)
    assert later.signal == pytest.approx(0.4 * first.signal, rel=0.05)
    assert later.surviving_fraction == pytest.approx(0.8, abs=0.03)
    assert later.bleaching == pytest.approx(0.2, abs=0.03)
    assert later.to_dict()["bleaching"] == later.bleaching


def test_latency_tracker_percentiles_and_order() -> None:
    tracker = LatencyTracker(window=100)
    for i in range(50):
        t = float(i)
        stamps = dict(zip(STAGES[:4], (t, t + 0.001, t + 0.002, t + 0.010 + i * 1e-4), strict=True))
        tracker.record(stamps)
    s = tracker.summary()
    assert s["inference"]["n"] == 50 and 8.0 < s["inference"]["p50"] < 12.0
    assert s["to_result"]["p99"] >= s["to_result"]["p50"]
    assert not ordered({"set_complete": 2.0, "inference_start": 1.0})
    assert intervals_ms({"exposure_end": 0.0, "result_ready": 0.5}) == {"to_result": 500.0}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux CPU affinity")
def test_cpu_partition_pins_only_the_calling_thread() -> None:
    split = partition()
    if split is None:
        pytest.skip("one core")
    seen = {}

    def work(role: str) -> None:
        seen[role] = (pin_current_thread(role), os.sched_getaffinity(0))

    for role in ("acquisition", "inference"):
        t = threading.Thread(target=work, args=(role,))
        t.start()
        t.join()
    assert seen["acquisition"] == (True, split[0]) and seen["inference"] == (True, split[1])
    assert not split[0] & split[1] and os.sched_getaffinity(0) == set(allowed())


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="POSIX thread priority")
def test_acquisition_nice_lowers_only_the_calling_thread() -> None:
    seen = {}

    def work() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        seen["ok"] = lower_current_thread_priority(5)
        seen["delta"] = os.getpriority(os.PRIO_PROCESS, tid) - before

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["ok"] and seen["delta"] == min(5, 19 - main_before)  # nice tops out at 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    assert lower_current_thread_priority(0) is False
