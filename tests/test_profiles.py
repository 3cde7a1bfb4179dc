"""Profiles: validation, one-line errors naming file and field, safety limits."""

from __future__ import annotations

import shutil

import pytest
import yaml

from srlive.errors import SafetyError
from srlive.hardware.connect import connect
from srlive.profiles import PROFILE_DIR, ProfileError, load_profile


def _copy_profile(tmp_path, mutate=None, cfg_text=None):
    data = yaml.safe_load((PROFILE_DIR / "sim_default.yaml").read_text())
    if mutate:
        mutate(data)
    cfg = tmp_path / "sim_default.cfg"
    if cfg_text is None:
        shutil.copy(PROFILE_DIR / "sim_default.cfg", cfg)
    else:
        cfg.write_text(cfg_text)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_default_profile_loads(profile):
    assert profile.name == "sim_default"
    assert profile.optics.pixel_nm == pytest.approx(65.0)
    assert profile.laser_lines == [405, 488, 561, 640]
    assert profile.smlm.activation_line == 405
    assert (profile.smlm.line, profile.smlm.power_mw) == (640, 140.0)
    assert profile.sim.grating_period_px(488) == pytest.approx(6.0)
    assert profile.config_path.exists()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["optics"].update(na="high"), "optics.na"),
        (lambda d: d["optics"].update(na=2.5), "optics.na"),
        (lambda d: d["limits"]["max_power_mw"].pop(561), "max_power_mw"),
        (lambda d: d.pop("roles"), "roles"),
        (lambda d: d["sim"].update(n_phases=0), "sim.n_phases"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["defaults"].update(power_mw=500), "power_mw"),
    ],
)
def test_broken_profile_is_one_line_naming_file_and_field(tmp_path, mutate, field):
    path = _copy_profile(tmp_path, mutate)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert field in message


def test_invalid_yaml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="bad.yaml.*YAML"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="unknown profile"):
        load_profile("no_such_profile")
    path = _copy_profile(tmp_path, lambda d: d.update(config="missing.cfg"))
    with pytest.raises(ProfileError, match="config.*missing.cfg"):
        load_profile(path)


def test_broken_cfg_is_one_line_naming_the_file(tmp_path):
    text = (
        (PROFILE_DIR / "sim_default.cfg")
        .read_text()
        .replace("simulators.devices,SimSLM", "simulators.devices,NoSuchDevice")
    )
    path = _copy_profile(tmp_path, cfg_text=text)
    profile = load_profile(path)
    with pytest.raises(ProfileError) as info:
        connect(profile)
    message = str(info.value)
    assert "\n" not in message and "sim_default.cfg" in message and "NoSuchDevice" in message


def test_role_missing_from_cfg(tmp_path):
    path = _copy_profile(tmp_path, lambda d: d["roles"].update(slm="DMD"))
    profile = load_profile(path)
    with pytest.raises(ProfileError, match=r"roles\.slm.*'DMD'"):
        connect(profile)


def test_limits(profile):
    profile.check_power(488, 200.0)
    with pytest.raises(SafetyError, match="outside"):
        profile.check_power(488, 200.1)
    with pytest.raises(SafetyError, match="not in profile"):
        profile.check_power(532, 1.0)
    profile.check_power(405, 5.0)  # the activation line, 5 mW at most
    with pytest.raises(SafetyError, match="outside the profile limit 0–5 mW"):
        profile.check_power(405, 5.1)
    with pytest.raises(SafetyError):
        profile.check_exposure(0.01)


def test_microscope_refuses_out_of_limit_settings_before_the_core(scope):
    scope.set_power(488, 10.0)
    with pytest.raises(SafetyError):
        scope.set_power(488, 1000.0)
    assert scope.power(488) == pytest.approx(10.0)
    with pytest.raises(SafetyError):
        scope.set_property("Laser488", "PowerMW", "999")
    with pytest.raises(SafetyError):
        scope.set_exposure(5000.0)


def test_make_safe_turns_lasers_off_and_blanks_the_slm(scope):
    import numpy as np

    for line in scope.profile.laser_lines:
        scope.set_power(line, 5.0)
        scope.laser_on(line)
    scope.show_slm(np.full(scope.slm_shape, 255, np.uint8))
    scope.make_safe()
    assert not any(scope.laser_is_on(line) for line in scope.profile.laser_lines)
    assert not scope.core.getSLMImage("SLM").any()
