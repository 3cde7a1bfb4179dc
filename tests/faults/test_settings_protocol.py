"""Bad run settings and protocols are refused on one line before any laser is lit.

Issue 13 items 6 (settings silently replaced by the defaults) and 8 (protocol validation
gaps: unbounded plans, unchecked stage positions, unknown keys, infinite budgets, bursts
that cannot fit in memory, empty plans, NaN positions).
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import useq

import srlive.pipeline.run_live as live_module
import srlive.pipeline.run_protocol as acquire_module
from srlive.acquisition.mda import sets_per_channel
from srlive.acquisition.plan import build_plans
from srlive.acquisition.protocol import MAX_PROTOCOL_FRAMES, Protocol, ProtocolError
from srlive.acquisition.settings import resolve_illumination
from srlive.cli import main
from srlive.errors import SafetyError
from srlive.hardware.microscope import Microscope
from srlive.pipeline.run_protocol import acquire, validate
from srlive.profiles import ProfileError, load_profile
from srlive.recon.learned.geometry import Geometry

RUN = ["run", "--headless", "--modality", "widefield", "--set", "SimHub.FrameSize=64"]
RUN += ["--frames", "1"]
SMALL = [("SimHub", "FrameSize", "64")]


def _forbid_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("a device was touched")

    monkeypatch.setattr(acquire_module, "connect", forbidden)
    monkeypatch.setattr(live_module, "connect", forbidden)


def _protocol(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _error_line(capsys: pytest.CaptureFixture) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("srlive: error:")
    return lines[0]


# --- item 6: given settings are checked, never replaced by the defaults ----------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--exposure-ms", "0"], "exposure 0 ms"),
        (["--line", "0"], "laser line 0 nm is not in profile"),
        (["--exposure-ms", "nan"], "finite"),
        (["--power-mw", "inf"], "finite"),
        (["--power-mw", "nan"], "finite"),
    ],
)
def test_run_refuses_given_settings_before_any_device(tmp_path, monkeypatch, capsys, args, needle):
    _forbid_devices(monkeypatch)
    out = tmp_path / "r.zarr"
    assert main([*RUN, "--out", str(out), *args]) == 2
    assert needle in _error_line(capsys)
    assert not out.exists()


def test_resolve_illumination_keeps_given_values_and_defaults_only_none(profile):
    default = resolve_illumination(profile)
    assert (default.line, default.power_mw, default.exposure_ms) == (488, 20.0, 10.0)
    given = resolve_illumination(profile, line=561, power_mw=0.0, exposure_ms=0.5)
    assert (given.line, given.power_mw, given.exposure_ms) == (561, 0.0, 0.5)
    for bad in ({"exposure_ms": 0}, {"line": 0}, {"power_mw": float("nan")}, {"line": True}):
        with pytest.raises(SafetyError):
            resolve_illumination(profile, **bad)


def test_geometry_of_line_zero_is_not_the_default_line(profile):
    assert Geometry.from_profile(profile).emission_nm == 510.0
    with pytest.raises(ProfileError, match="laser line 0"):
        Geometry.from_profile(profile, 0)


# --- item 8: protocols refused before any device -------------------------------------------
BAD_PROTOCOLS = {
    "a billion loops": (
        'mda: {time_plan: {interval: 0, loops: 1000000000}, channels: ["488"]}',
        "'mda.time_plan': 1,000,000,000 timepoints",
    ),
    "too many frames": (
        'mda: {time_plan: {interval: 0, loops: 2000000}, channels: ["488"]}',
        "18,000,000 raw frames",
    ),
    "z beyond the stage": (
        'mda: {stage_positions: [{x: 0, y: 0, z: 0}, {x: 0, y: 0, z: 500}], channels: ["488"]}',
        "stage z position 500 µm is outside the travel",
    ),
    "x a million km away": (
        'mda: {stage_positions: [{x: 1.0e12, y: 0}], channels: ["488"]}',
        "stage x position 1e+12 µm is outside the travel",
    ),
    "z plan beyond the stage": (
        'mda: {z_plan: {range: 400, step: 100}, channels: ["488"]}',
        "stage z position -200 µm",
    ),
    "x without y": ('mda: {stage_positions: [{x: 5}], channels: ["488"]}', "x or y alone"),
    "channel key typo": (
        'mda: {channels: ["488"]}\nsrlive: {channels: {"448": {power_mw: 0.5}}}',
        "'srlive.channels.448': the plan has no channel '448'",
    ),
    "channel key without channels": (
        'mda: {time_plan: {interval: 0, loops: 1}}\nsrlive: {channels: {"561": {power_mw: 0.5}}}',
        "no channel '561' (its channels: 488)",
    ),
    "unknown mda key": (
        'mda: {z_plan: {range: 2, step: 1, go_upp: false}, channels: ["488"]}',
        "'mda.z_plan.go_upp': unknown field",
    ),
    "unknown channel key": (
        'mda: {channels: [{config: "488", exposur: 5}]}',
        "'mda.channels.0.exposur': unknown field",
    ),
    "unknown top-level mda key": ('mda: {chanels: ["488"]}', "'mda.chanels': unknown field"),
    "infinite dose budget": (
        'mda: {channels: ["488"]}\nsrlive: {dose_budget_mj: .inf}',
        "'srlive.dose_budget_mj': must be a finite number",
    ),
    "dose budget above the profile's": (
        'mda: {channels: ["488"]}\nsrlive: {dose_budget_mj: 1.0e9}',
        "above the profile's limit",
    ),
    "a 1e8-frame burst": (
        'mda: {channels: ["640"]}\n'
        'srlive: {channels: {"640": {modality: smlm, power_mw: 140, frames: 100000000}}}',
        "'srlive.channels.640.frames'",
    ),
    "empty plan": ("mda: {}", "the plan has no sets"),
    "nan position": (
        'mda: {stage_positions: [{x: .nan, y: 0}], channels: ["488"]}',
        "'mda.stage_positions.0.x': must be a finite number, got nan",
    ),
    "duplicate channel": ('mda: {channels: ["488", "488"]}', "channel '488' is twice"),
    "grid without a field of view": (
        'mda: {grid_plan: {top: 0, left: 0, bottom: 50, right: 50}, channels: ["488"]}',
        "fov_width and fov_height",
    ),
    "interval-free duration": (
        'mda: {time_plan: {interval: 0, duration: 10}, channels: ["488"]}',
        "interval of more than 0 s",
    ),
    "sub-sequence": (
        "mda: {stage_positions: [{x: 0, y: 0, sequence: {time_plan: {interval: 0, loops: 2}}}],"
        ' channels: ["488"]}',
        "sub-sequences are not supported",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PROTOCOLS))
def test_bad_protocol_is_refused_on_one_line_before_any_device(tmp_path, monkeypatch, case):
    text, needle = BAD_PROTOCOLS[case]
    _forbid_devices(monkeypatch)
    out = tmp_path / "out.zarr"
    start = time.perf_counter()
    with pytest.raises(ProtocolError) as info:
        acquire(_protocol(tmp_path, text), out=out)
    assert time.perf_counter() - start < 5  # counted, never built
    assert "\n" not in str(info.value) and needle in str(info.value), str(info.value)
    assert not out.exists()


def test_cli_refuses_a_channel_key_typo(tmp_path, monkeypatch, capsys):
    _forbid_devices(monkeypatch)
    path = _protocol(tmp_path, BAD_PROTOCOLS["channel key typo"][0])
    assert main(["acquire", str(path), "--out", str(tmp_path / "o.zarr")]) == 2
    assert "no channel '448'" in _error_line(capsys)


def test_burst_that_cannot_fit_in_memory_is_refused_before_lighting(tmp_path, monkeypatch):
    lit: list[int] = []
    real_on = Microscope.laser_on

    def laser_on(self: Microscope, line: int) -> None:  # the real call, recorded
        lit.append(line)
        real_on(self, line)

    monkeypatch.setattr(Microscope, "laser_on", laser_on)
    path = _protocol(
        tmp_path,
        'mda: {channels: ["640"]}\n'
        'srlive: {channels: {"640": {modality: smlm, power_mw: 140, exposure_ms: 5, '
        "frames: 1000000}}}",
    )
    out = tmp_path / "burst.zarr"
    with pytest.raises(ProtocolError, match="1,000,000 frames of 2048×2048 px needs") as info:
        acquire(path, out=out, properties=[("SimHub", "FrameSize", "2048")])
    assert "\n" not in str(info.value)
    assert lit == [] and not out.exists()


def test_a_long_plan_is_counted_not_built():
    protocol_text = {
        "mda": {"time_plan": {"interval": 0, "loops": MAX_PROTOCOL_FRAMES}, "channels": ["488"]},
        "srlive": {"channels": {"488": {"modality": "widefield"}}},
    }
    protocol = Protocol.model_validate(protocol_text)
    tracemalloc.start()
    start = time.perf_counter()
    plans, _ = build_plans(protocol, load_profile(None), None)
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(plans) == MAX_PROTOCOL_FRAMES
    assert elapsed < 5 and peak < 50e6  # a list of 10⁷ set plans is gigabytes and minutes


@pytest.mark.parametrize(
    "mda",
    [
        {"channels": ["488"]},
        {"time_plan": {"interval": 0, "loops": 5}},
        {
            "stage_positions": [{"x": 1, "y": 2}, {"x": 3, "y": 4, "z": 1}],
            "z_plan": {"range": 2.3, "step": 1},
            "channels": [{"config": "488", "acquire_every": 2}, {"config": "561", "do_stack": 0}],
            "time_plan": {"interval": 0, "loops": 5},
        },
        {
            "grid_plan": {"rows": 2, "columns": 3},
            "z_plan": {"above": 1.1, "below": 0.7, "step": 0.5},
            "axis_order": "tpgzc",
        },
        {
            "time_plan": [
                {"interval": 0, "loops": 3},
                {"interval": 1, "loops": 4},
                {"interval": 2, "loops": 2},
            ]
        },
        {
            "time_plan": {"interval": 1, "duration": 5},
            "z_plan": {"top": 3, "bottom": 0, "step": 0.7},
        },
    ],
)
def test_counted_sets_match_useq_events(mda):
    sequence = useq.MDASequence.model_validate(mda)
    assert sum(sets_per_channel(sequence, MAX_PROTOCOL_FRAMES)) == len(list(sequence))


def test_example_protocols_count_what_they_plan():
    for path in sorted((Path(__file__).parents[2] / "protocols").glob("*.yaml")):
        protocol, profile = validate(path, None)
        plans, _ = build_plans(protocol, profile, (64, 64))
        assert len(plans) == len(list(plans)) > 0, path.name
