"""The simulated devices through a real Micro-Manager core (pymmcore-plus UniMMCore)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import useq
from pymmcore_plus.experimental.unicore import UniMMCore

from srlive.acquisition.modalities import get_modality, slm_images
from srlive.profiles import PROFILE_DIR


def test_cfg_loads_all_roles(core, profile):
    loaded = set(core.getLoadedDevices())
    for label in [
        profile.roles.camera,
        profile.roles.slm,
        profile.roles.z_stage,
        *profile.roles.lasers.values(),
    ]:
        assert label in loaded
    assert core.getCameraDevice() == "Camera"
    assert core.getSLMDevice() == "SLM"
    assert core.getFocusDevice() == "Z"


def test_laser_power_limits_are_enforced_by_the_device(core):
    core.setProperty("Laser488", "PowerMW", 150.0)
    assert float(core.getProperty("Laser488", "PowerMW")) == pytest.approx(150.0)
    with pytest.raises(Exception, match="range|outside"):
        core.setProperty("Laser488", "PowerMW", 250.0)
    assert float(core.getProperty("Laser488", "PowerMW")) == pytest.approx(150.0)
    # the 640 line is limited to 150 mW by its pre-init MaxPowerMW in the .cfg
    with pytest.raises(Exception, match="range|outside"):
        core.setProperty("Laser640", "PowerMW", 180.0)
    assert core.getPropertyUpperLimit("Laser640", "PowerMW") == pytest.approx(150.0)


def test_laser_on_off_is_the_shutter_state(core):
    core.setShutterOpen("Laser561", True)
    assert core.getShutterOpen("Laser561")
    core.setShutterOpen("Laser561", False)
    assert not core.getShutterOpen("Laser561")


def test_lasers_go_off_while_a_frame_is_being_made(scope):
    """Safety never waits for a frame: the camera's noise is drawn outside the world's lock,
    so lasers switch off from another thread while a frame is still being exposed."""
    import threading

    from simulators.devices import hub_world

    world = hub_world("SimHub")
    real, inside, release = world.camera, threading.Event(), threading.Event()

    class HeldCamera:  # the real camera model, held in the middle of making a frame
        def __getattr__(self, name):
            return getattr(real, name)

        def expose(self, *args, **kwargs):
            inside.set()
            release.wait(10.0)
            return real.expose(*args, **kwargs)

    world.camera = HeldCamera()
    scope.set_power(488, 20.0)
    scope.laser_on(488)
    snap = threading.Thread(target=scope.core.snapImage)
    snap.start()
    try:
        assert inside.wait(10.0)
        done = threading.Event()
        threading.Thread(target=lambda: (scope.make_safe(), done.set()), daemon=True).start()
        assert done.wait(5.0), "make_safe() waited for the frame being made"
        assert not scope.core.getShutterOpen("Laser488")
    finally:
        release.set()
        snap.join()
        world.camera = real


def test_no_light_no_signal_and_signal_with_light(core):
    core.setExposure(10.0)
    core.snapImage()
    dark = core.getImage().astype(float)
    assert dark.mean() == pytest.approx(100.0, abs=2.0)  # camera offset only
    core.setProperty("Laser488", "PowerMW", 20.0)
    core.setShutterOpen("Laser488", True)
    core.snapImage()
    lit = core.getImage().astype(float)
    assert lit.mean() > dark.mean() + 20


def test_slm_image_round_trip_and_blank(core):
    shape = (core.getSLMHeight("SLM"), core.getSLMWidth("SLM"))
    assert shape == (1536, 2048)
    image = np.zeros(shape, np.uint8)
    image[:, ::6] = 255
    core.setSLMImage("SLM", image)
    core.displaySLMImage("SLM")
    np.testing.assert_array_equal(core.getSLMImage("SLM"), image)


def test_sequence_acquisition_count_and_timing(core):
    core.setExposure(5.0)
    readout = float(core.getProperty("Camera", "ReadoutTime"))
    n = 30
    start = time.perf_counter()
    core.startSequenceAcquisition(n, 0.0, True)
    got = []
    while len(got) < n:
        if core.getRemainingImageCount():
            got.append(core.popNextImage())
        elif not core.isSequenceRunning():
            break
        else:
            time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    assert len(got) == n
    assert got[0].shape == (128, 128) and got[0].dtype == np.uint16
    # a sequence cannot run faster than exposure + readout
    assert elapsed >= n * (5.0 + readout) / 1000.0 * 0.98


def test_slm_sequence_advances_per_camera_frame(scope, profile):
    core = scope.core
    images = slm_images(profile, get_modality("sim9"), 488, scope.slm_shape)
    scope.start_slm_sequence(images)
    scope.set_power(488, 20.0)
    scope.laser_on(488)
    core.setExposure(2.0)
    core.startSequenceAcquisition(12, 0.0, True)
    patterns = []
    while len(patterns) < 12:
        if core.getRemainingImageCount():
            _, md = core.popNextImageAndMD()
            patterns.append(int(md["SimSLMPattern"]))
        else:
            time.sleep(0.0005)
    assert patterns == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]


def test_z_stage_defocus_blurs(core):
    core.setProperty("Laser488", "PowerMW", 50.0)
    core.setShutterOpen("Laser488", True)
    core.setExposure(10.0)

    def contrast() -> float:
        core.snapImage()
        img = core.getImage().astype(float) - 100
        return float(img.std() / img.mean())

    core.setPosition("Z", 0.0)
    focused = contrast()
    core.setPosition("Z", 1.0)
    assert core.getPosition("Z") == pytest.approx(1.0)
    assert contrast() < 0.5 * focused


def test_sample_properties(core, tmp_path):
    assert core.getProperty("SimHub", "Sample") == "microtubules"
    core.setProperty("SimHub", "Sample", "vesicles")
    assert core.getProperty("SimHub", "Sample") == "vesicles"
    density = np.zeros((64, 64), np.float32)
    density[32, 20:44] = 1.0
    path = tmp_path / "line.npy"
    np.save(path, density)
    core.setProperty("SimHub", "SamplePixelSizeNm", 65.0)
    core.setProperty("SimHub", "SampleFile", str(path))
    assert core.getProperty("SimHub", "Sample") == "file"
    core.setProperty("Laser488", "PowerMW", 100.0)
    core.setShutterOpen("Laser488", True)
    core.setExposure(20.0)
    core.snapImage()
    img = core.getImage().astype(float) - 100
    # the file sample is centred on the field of view at stage (0, 0)
    row = int(np.argmax(img.sum(axis=1)))
    assert abs(row - 64) <= 1
    with pytest.raises(Exception, match="suffix|nosuch"):
        core.setProperty("SimHub", "SampleFile", str(tmp_path / "nosuch.png"))


def test_pymmcore_plus_mda_runner_acquires_from_the_cfg():
    """pymmcore-plus's own MDA runner, no srlive code involved."""
    core = UniMMCore()
    core.loadSystemConfiguration(str(PROFILE_DIR / "sim_default.cfg"))
    try:
        core.setProperty("SimHub", "FrameSize", 128)
        core.setProperty("Laser488", "PowerMW", 20.0)
        core.setShutterOpen("Laser488", True)
        frames = []
        core.mda.events.frameReady.connect(lambda img, event, meta: frames.append((img, event)))
        seq = useq.MDASequence(
            time_plan={"interval": 0, "loops": 3},
            z_plan={"range": 1.0, "step": 0.5},
            axis_order="tpz",
        )
        core.mda.run(seq)
        assert len(frames) == 9
        assert all(img.shape == (128, 128) for img, _ in frames)
        assert {event.index["z"] for _, event in frames} == {0, 1, 2}
        assert float(np.mean([img.mean() for img, _ in frames])) > 110
    finally:
        core.setShutterOpen("Laser488", False)
        core.unloadAllDevices()
