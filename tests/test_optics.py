"""SIMOptics: a microscope's optics for SIM reconstruction without a Micro-Manager config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from srlive.profiles import load_profile
from srlive.recon.optics import NominalPattern, SIMOptics

BASE = {"pixel_nm": 65.0, "na": 1.49, "emission_nm": 510.0}


def test_defaults():
    optics = SIMOptics(**BASE)
    assert optics.immersion_index == 1.518
    assert (optics.n_angles, optics.n_phases, optics.order) == (3, 3, "angle-major")
    assert optics.frames_per_set == 9
    assert (optics.offset_adu, optics.gain_e_per_adu) == (100.0, 1.0)
    assert optics.nominal is None and optics.wiener is None


def test_frozen_and_extra_forbidden():
    optics = SIMOptics(**BASE)
    with pytest.raises(ValueError):
        optics.na = 1.2  # type: ignore[misc]
    with pytest.raises(ValueError, match="Extra inputs"):
        SIMOptics(**BASE, magnification=100)


def test_from_profile_sim_default():
    profile = load_profile(None)
    optics = SIMOptics.from_profile(profile)
    assert optics.pixel_nm == pytest.approx(65.0)
    assert optics.na == 1.49 and optics.immersion_index == 1.518
    assert optics.emission_nm == 510.0  # default line 488
    assert (optics.n_angles, optics.n_phases) == (3, 3)
    assert optics.nominal == NominalPattern(period_nm=195.0, angles_deg=(0.0, 60.0, 120.0))
    red = SIMOptics.from_profile(profile, laser_line=640)
    assert red.emission_nm == 670.0 and red.nominal.period_nm == 260.0


def test_from_profile_unknown_line_is_one_line():
    with pytest.raises(ValueError, match=r"sim_default.*laser line 532") as info:
        SIMOptics.from_profile(load_profile(None), laser_line=532)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    optics = SIMOptics(
        **BASE,
        n_angles=2,
        n_phases=5,
        order="phase-major",
        offset_adu=98.5,
        gain_e_per_adu=0.46,
        nominal={"period_nm": 240.0, "angles_deg": [10.0, 100.0]},
        wiener=0.05,
    )
    path = tmp_path / f"optics{suffix}"
    dump = yaml.safe_dump if suffix == ".yaml" else json.dumps
    path.write_text(dump(optics.model_dump(mode="json")))
    assert SIMOptics.from_file(path) == optics


def test_angles_are_taken_modulo_180():
    nominal = NominalPattern(period_nm=200.0, angles_deg=(-30.0, 190.0, 60.0))
    assert nominal.angles_deg == pytest.approx((150.0, 10.0, 60.0))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pixel_nm: 65\nna: 1.49\n", "emission_nm: Field required"),
        ("pixel_nm: .nan\nna: 1.49\nemission_nm: 510\n", "pixel_nm: Input should be a finite"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: .inf\n", "emission_nm: Input should be a finite"),
        ("pixel_nm: 65\nna: 1.45\nemission_nm: 510\nimmersion_index: 1.33\n", "exceeds"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\nn_phases: 2\n", "n_phases: Input should"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\norder: rows\n", "order: Input should be"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\nlens: x\n", "lens: Extra inputs"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\noffset_adu: -1\n", "offset_adu:"),
        (
            "pixel_nm: 65\nna: 1.49\nemission_nm: 510\n"
            "nominal: {period_nm: 200, angles_deg: [0]}\n",
            "nominal.angles_deg has 1 angle(s) but n_angles is 3",
        ),
        (
            "pixel_nm: 65\nna: 1.49\nemission_nm: 510\nnominal: {period_nm: .nan}\n",
            "nominal.period_nm: Input should be a finite",
        ),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\nnominal: {period_nm: 150}\n", "cutoff"),
        ("pixel_nm: 65\nna: 1.49\nemission_nm: 510\nwiener: 0\n", "wiener:"),
        ("- 1\n- 2\n", "mapping"),
        ("pixel_nm: [65\n", "invalid YAML"),
    ],
)
def test_bad_file_is_one_line_naming_file_and_field(tmp_path, text, fragment):
    path = tmp_path / "scope.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        SIMOptics.from_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert fragment in message


def test_several_errors_in_one_line(tmp_path):
    path = tmp_path / "scope.yaml"
    path.write_text("pixel_nm: -1\nna: 2.5\nemission_nm: 510\n")
    with pytest.raises(ValueError) as info:
        SIMOptics.from_file(path)
    assert "pixel_nm:" in str(info.value) and "; na:" in str(info.value)


def test_missing_or_unknown_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        SIMOptics.from_file(tmp_path / "nowhere.yaml")
    odd = tmp_path / "scope.toml"
    odd.write_text("na = 1.4")
    with pytest.raises(ValueError, match=r"scope\.toml.*unknown optics file type"):
        SIMOptics.from_file(odd)


def test_with_overrides_ignores_none_and_revalidates():
    optics = SIMOptics.from_profile(load_profile(None))
    same = optics.with_overrides(pixel_nm=None, na=None)
    assert same == optics
    changed = optics.with_overrides(pixel_nm=80.0, order="phase-major", wiener=None)
    assert changed.pixel_nm == 80.0 and changed.order == "phase-major"
    assert changed.na == optics.na and changed.nominal == optics.nominal
    period = optics.with_overrides(period_nm=210.0)
    assert period.nominal == NominalPattern(period_nm=210.0, angles_deg=(0.0, 60.0, 120.0))
    fresh = SIMOptics(**BASE).with_overrides(period_nm=200.0, angles_deg=[5, 65, 125])
    assert fresh.nominal == NominalPattern(period_nm=200.0, angles_deg=(5.0, 65.0, 125.0))
    with pytest.raises(ValueError, match=r"^optics overrides: na: .*\S$") as info:
        optics.with_overrides(na=float("nan"))
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="nominal.angles_deg has 3 angle"):
        optics.with_overrides(n_angles=5)
    with pytest.raises(ValueError, match="Extra inputs"):
        optics.with_overrides(magnification=60)


def _encoded_frames(n_sets: int, n_angles: int, n_phases: int, order: str) -> np.ndarray:
    """Frames whose pixels hold 100·set + 10·angle + phase, laid out in ``order``."""
    frames = []
    for s in range(n_sets):
        keys = (
            [(a, p) for a in range(n_angles) for p in range(n_phases)]
            if order == "angle-major"
            else [(a, p) for p in range(n_phases) for a in range(n_angles)]
        )
        frames += [np.full((4, 6), 100 * s + 10 * a + p, np.uint16) for a, p in keys]
    return np.stack(frames)


@pytest.mark.parametrize(("n_angles", "n_phases"), [(3, 3), (3, 5), (2, 4)])
def test_to_angle_major_from_phase_major(n_angles, n_phases):
    optics = SIMOptics(**BASE, n_angles=n_angles, n_phases=n_phases, order="phase-major")
    raw = _encoded_frames(2, n_angles, n_phases, "phase-major")
    out = optics.to_angle_major(raw)
    assert out.shape == raw.shape and out.dtype == raw.dtype
    expected = [
        100 * s + 10 * a + p for s in range(2) for a in range(n_angles) for p in range(n_phases)
    ]
    assert out[:, 0, 0].tolist() == expected
    assert (out == out[:, :1, :1]).all()  # whole frames moved, not pixels


def test_to_angle_major_keeps_angle_major_and_checks_count():
    optics = SIMOptics(**BASE)
    raw = _encoded_frames(1, 3, 3, "angle-major")
    assert optics.to_angle_major(raw) is raw
    with pytest.raises(ValueError, match=r"8 frame\(s\) are not a whole number of SIM sets of 9"):
        optics.to_angle_major(raw[:8])
    with pytest.raises(ValueError, match="shaped"):
        optics.to_angle_major(raw[0])
