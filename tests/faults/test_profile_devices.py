"""Fault injection on profiles, role devices and property writes.

Issue 13 items 9 (profile validation gaps), 10 (the simulated lasers' shared power limit and
the shared memory a failed start leaked) and 11 (``--set`` holes: one property interlock).
"""

from __future__ import annotations

import gc
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from srlive.cli import main
from srlive.errors import SafetyError
from srlive.hardware.connect import connect
from srlive.pipeline.ring import SetRing
from srlive.profiles import PROFILE_DIR, ProfileError, load_profile

RUN = ["run", "--headless", "--modality", "widefield", "--set", "SimHub.FrameSize=64"]
RUN += ["--frames", "1"]
SHM = Path("/dev/shm")


def _profile(tmp_path: Path, mutate=None, cfg_extra: str = "", name: str = "p.yaml") -> Path:
    """A copy of sim_default (and its .cfg, plus ``cfg_extra`` lines) changed by ``mutate``."""
    data = yaml.safe_load((PROFILE_DIR / "sim_default.yaml").read_text())
    if mutate:
        mutate(data)
    (tmp_path / "sim_default.cfg").write_text(
        (PROFILE_DIR / "sim_default.cfg").read_text() + cfg_extra
    )
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _one_line(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture
def connected():
    """Connect a profile file; every microscope made is unloaded afterwards."""
    scopes = []

    def make(path: Path):
        scope = connect(load_profile(path))
        scopes.append(scope)
        return scope

    yield make
    for scope in scopes:
        scope.make_safe()
        scope.core.unloadAllDevices()


# --- item 9: profile validation -----------------------------------------------------------
@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["limits"]["max_power_mw"].update({640: float("inf")}), "max_power_mw.640"),
        (lambda d: d["sim"].update(angles_deg=[0, float("nan"), 120]), "sim.angles_deg.1"),
        (lambda d: d["limits"]["max_power_mw"].update({561: 0}), "max_power_mw.561"),
        (lambda d: d["limits"].update(max_exposure_ms=float("inf")), "max_exposure_ms"),
        (lambda d: d["limits"].update(max_dose_mj=float("inf")), "max_dose_mj"),
    ],
)
def test_infinite_nan_and_zero_limits_are_refused(tmp_path, mutate, field):
    path = _profile(tmp_path, mutate)
    with pytest.raises(ProfileError, match=field) as info:
        load_profile(path)
    assert "\n" not in str(info.value)


def test_a_limit_above_the_device_maximum_gives_way_to_the_device(tmp_path, connected, caplog):
    path = _profile(tmp_path, lambda d: d["limits"]["max_power_mw"].update({640: 200}))
    assert load_profile(path).limits.max_power_mw[640] == 200
    with caplog.at_level(logging.WARNING, logger="srlive.hardware.microscope"):
        scope = connected(path)
    assert scope.profile.limits.max_power_mw == {405: 5, 488: 200, 561: 200, 640: 150}
    assert any("640" in r.getMessage() and "150" in r.getMessage() for r in caplog.records)
    scope.set_power(640, 100.0)
    with pytest.raises(SafetyError, match="0–150 mW"):  # refused by srlive, not the device
        scope.set_power(640, 180.0)
    assert scope.power(640) == pytest.approx(100.0)


def test_srlive_profile_prints_the_limits_that_apply(tmp_path, capsys):
    path = _profile(tmp_path, lambda d: d["limits"]["max_power_mw"].update({640: 200}))
    assert main(["profile", str(path)]) == 0
    assert "640: 150" in capsys.readouterr().out


def test_a_camera_as_a_laser_role_is_refused(tmp_path):
    path = _profile(tmp_path, lambda d: d["roles"]["lasers"].update({488: "Camera"}))
    with pytest.raises(ProfileError, match=r"'Camera' is both roles\.camera and roles\.lasers"):
        load_profile(path)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda d: (d["roles"]["lasers"].update({488: "SLM"}), d["roles"].update(slm=None)),
            r"roles\.lasers\.488.*'SLM' is a SLMDevice.*ShutterDevice",
        ),
        (
            lambda d: d["roles"].update(camera="Z", z_stage=None),
            r"roles\.camera.*'Z' is a StageDevice.*CameraDevice",
        ),
        (
            lambda d: d["roles"]["lasers"].update({488: "Laser561", 561: "Laser488"}),
            r"roles\.lasers\.488.*'Laser561' reports Wavelength 561",
        ),
        (
            lambda d: d["roles"].update(laser_power_property="Watts"),
            r"roles\.lasers\.405.*no power property 'Watts'",
        ),
    ],
)
def test_a_role_device_of_the_wrong_kind_is_refused_at_connect(tmp_path, mutate, needle):
    profile = load_profile(_profile(tmp_path, mutate))
    with pytest.raises(ProfileError, match=needle) as info:
        connect(profile)
    assert "\n" not in str(info.value)


def test_a_directory_given_as_the_profile_is_one_line(tmp_path, capsys):
    (tmp_path / "x.yaml").mkdir()
    assert main(["profile", str(tmp_path / "x.yaml")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert len(err) == 1 and "not a file" in err[0]


@pytest.mark.parametrize(
    ("app_path", "needle"),
    [
        (None, r"micromanager\.app_path.*missing"),
        ("/nonexistent/Micro-Manager", r"micromanager\.app_path.*no Micro-Manager installation"),
        ("TMP", r"micromanager\.app_path.*no Micro-Manager installation"),
    ],
)
def test_a_missing_app_path_says_so(tmp_path, app_path, needle):
    settings = {"backend": "pycromanager-headless"}
    if app_path is not None:
        settings["app_path"] = str(tmp_path) if app_path == "TMP" else app_path
    profile = load_profile(_profile(tmp_path, lambda d: d.update(micromanager=settings)))
    with pytest.raises(ProfileError, match=needle):
        connect(profile)


def test_pycromanager_with_nothing_on_the_port_is_one_line(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    settings = {"backend": "pycromanager", "port": port}
    path = _profile(tmp_path, lambda d: d.update(micromanager=settings))
    done = subprocess.run(
        [sys.executable, "-m", "srlive", "profile", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    err = _one_line(done.stderr)
    assert len(err) == 1, done.stderr
    assert "cannot reach Micro-Manager" in err[0] and str(port) in err[0]


# --- item 10: one power limit per simulated laser, no leaked shared memory ---------------
def test_each_simulated_laser_has_its_own_power_limit(core):
    labels = ("Laser488", "Laser561", "Laser640")
    limits = {label: core.getPropertyUpperLimit(label, "PowerMW") for label in labels}
    assert limits == {"Laser488": 200.0, "Laser561": 200.0, "Laser640": 150.0}
    for label in ("Laser488", "Laser561"):
        assert float(core.getProperty(label, "MaxPowerMW")) == 200.0
        core.setProperty(label, "PowerMW", 180.0)
        assert float(core.getProperty(label, "PowerMW")) == pytest.approx(180.0)


def test_a_run_at_180_mw_on_the_488_line_succeeds(tmp_path, capsys):
    assert main([*RUN, "--power-mw", "180", "--out", str(tmp_path / "a.zarr")]) == 0


def test_a_ring_that_is_never_closed_leaks_no_shared_memory():
    ring = SetRing(2, 1, (8, 8), shared=True)
    name = ring.shm_name
    assert name and (SHM / name).exists()
    del ring
    gc.collect()
    try:
        assert not (SHM / name).exists()
    finally:  # on failure, do not leave the block behind
        if (SHM / name).exists():
            (SHM / name).unlink()


def test_a_session_that_fails_to_start_leaks_no_shared_memory(tmp_path):
    # the profile allows 15 s; the simulated camera refuses it after the ring was made
    path = _profile(tmp_path, lambda d: d["limits"].update(max_exposure_ms=20000))
    args = [*RUN, "--profile", str(path), "--exposure-ms", "15000", "--out", str(tmp_path / "o")]
    done = subprocess.run(
        [sys.executable, "-m", "srlive", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "leaked shared_memory" not in done.stderr
    err = _one_line(done.stderr)
    assert len(err) == 1 and "exposure" in err[0], done.stderr


# --- item 11: the property interlock ------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "prop", "value", "error", "needle"),
    [
        ("Laser488", "Nope", "1", ProfileError, "has no property 'Nope'"),
        ("Nope", "Power", "1", ProfileError, "no device 'Nope'"),
        ("Laser488", "Wavelength", "640", SafetyError, "pre-initialisation"),
        ("Laser488", "MaxPowerMW", "10000", SafetyError, "pre-initialisation"),
        ("Laser488", "Gated", "No", SafetyError, "only its PowerMW"),
        ("Laser488", "PowerMW", "250", SafetyError, "outside"),
        ("Laser488", "PowerMW", "nan", SafetyError, "outside"),
        ("Laser488", "PowerMW", "lots", SafetyError, "not a number"),
        ("Core", "Shutter", "Laser561", SafetyError, "Core"),
        ("Core", "Camera", "Z", SafetyError, "Core"),
        ("Camera", "Exposure", "5000", SafetyError, "exposure"),
        ("SimHub", "DoseMJ", "0", ProfileError, "read-only"),
        ("SimHub", "Sample", "teapot", ProfileError, "teapot"),
    ],
)
def test_the_property_interlock_refuses_on_one_line(scope, label, prop, value, error, needle):
    before = {
        (lb, p): scope.core.getProperty(lb, p)
        for lb, p in [("Laser488", "Wavelength"), ("Laser488", "MaxPowerMW"), ("Core", "Shutter")]
    }
    with pytest.raises(error, match=needle) as info:
        scope.set_property(label, prop, value)
    assert "\n" not in str(info.value)
    assert {k: scope.core.getProperty(*k) for k in before} == before
    assert scope.core.getPropertyUpperLimit("Laser488", "PowerMW") == 200.0


def test_the_property_interlock_passes_safe_writes_through_the_limits(scope):
    scope.set_property("Laser488", "PowerMW", "12.5")
    assert scope.power(488) == pytest.approx(12.5)
    scope.set_property("Camera", "Exposure", "20")
    assert scope.core.getExposure() == pytest.approx(20.0)
    scope.set_property("SimHub", "FrameSize", "64")
    assert scope.frame_shape == (64, 64)


def test_a_light_source_outside_the_laser_roles_is_refused(tmp_path, connected):
    extra = (
        "#py pyDevice,Laser532,simulators.devices,SimLaser\n"
        "#py Parent,Laser532,SimHub\n"
        "#py Property,Laser532,Wavelength,532\n"
    )
    # the .cfg's Initialize line comes before the extra device: initialise it again after it
    extra += "#py Property,Core,Initialize,1\n"
    scope = connected(_profile(tmp_path, cfg_extra=extra))
    assert "Laser532" in scope.core.getLoadedDevices()
    with pytest.raises(SafetyError, match="outside the profile's laser roles"):
        scope.set_property("Laser532", "PowerMW", "100")
    assert float(scope.core.getProperty("Laser532", "PowerMW")) == 0.0


def test_the_simulated_laser_refuses_identity_changes_after_initialisation(core):
    for prop, value in (("Wavelength", 640), ("MaxPowerMW", 10_000)):
        with pytest.raises(Exception, match="before initialisation"):
            core.setProperty("Laser488", prop, value)
    assert int(float(core.getProperty("Laser488", "Wavelength"))) == 488
    assert core.getPropertyUpperLimit("Laser488", "PowerMW") == 200.0


@pytest.mark.parametrize(
    "setting",
    ["Laser488.Wavelength=640", "Laser488.MaxPowerMW=10000", "Laser488.Nope=1"],
)
def test_set_holes_are_one_line_from_the_cli(tmp_path, capsys, setting):
    out = tmp_path / "o.zarr"
    assert main([*RUN, "--set", setting, "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("srlive: error:") and setting.split("=")[0] in err[0]
    assert not out.exists()  # refused before a store was made
