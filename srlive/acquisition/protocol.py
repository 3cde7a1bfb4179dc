"""Automated imaging protocols: a useq-schema MDASequence plus srlive's own fields.

A protocol file (YAML or JSON) has two sections::

    mda:        # a useq-schema MDASequence: time_plan, stage_positions, grid_plan,
                # z_plan, channels (channel ``config`` names a laser line, e.g. "488")
    srlive:     # per channel: modality, power, exposure, reconstruction; optimizer; budget

A plain useq-schema file (the MDASequence alone, as pymmcore-plus users have them) is a
protocol too: its channels get the modality, power and exposure defaults of the profile.

The whole protocol is validated before any device moves: every key must be known (in both
sections: a typo is an error, never a silently used default), every number finite, every
``srlive.channels`` entry must name a channel of the plan, every setting must fit the
profile, every stage position its travel, and the plan must be non-empty and at most
:data:`MAX_PROTOCOL_FRAMES` raw frames (counted without building it). Once the microscope is
connected, :func:`check_against_microscope` adds the devices' limits and each set's memory.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import useq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from srlive.acquisition.mda import (
    PlanError,
    check_supported,
    non_finite,
    positions_visited,
    sets_per_channel,
    unknown_field,
)
from srlive.acquisition.modalities import MODALITIES, Modality, get_modality
from srlive.acquisition.settings import resolve_illumination
from srlive.errors import SafetyError
from srlive.profiles import Profile
from srlive.recon.methods import METHODS, get_method, is_weights_file, unknown

# The most raw frames one protocol may plan (≈ 28 h of back-to-back 10 ms exposures, 80 GB
# at 64 px, 5 TB at 512 px); the plan is counted arithmetically and refused past it.
MAX_PROTOCOL_FRAMES = 10_000_000
# A set is held in memory while it is stored and reconstructed: the uint16 frames and a
# float32 working copy (3 × the raw bytes) must fit in this share of the available memory.
SET_MEMORY_FACTOR = 3
SET_MEMORY_SHARE = 0.5


class ProtocolError(ValueError):
    """A protocol file is missing, malformed or incompatible with the profile."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSettings(_Strict):
    """How one useq channel is imaged."""

    modality: str = "sim9"
    laser_line: int | None = Field(default=None, description="default: the channel config name")
    power_mw: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    exposure_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    reconstruction: str | None = Field(default=None, description="default: the modality's")
    frames: Annotated[int, Field(ge=1, le=MAX_PROTOCOL_FRAMES)] | None = Field(
        default=None, description="frames per set for fluctuation/smlm bursts"
    )

    @model_validator(mode="after")
    def _known(self) -> ChannelSettings:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"unknown modality {self.modality!r} (choose from {', '.join(MODALITIES)})"
            )
        recon = self.reconstruction
        listed = recon is None or recon == "none" or recon in METHODS
        if recon is not None and not listed and not is_weights_file(recon):
            raise unknown(recon)
        return self


class OptimizerSettings(_Strict):
    """Online parameter optimisation (see the optimizer)."""

    enabled: bool = False
    goal: Literal["quality-within-budget", "min-dose-at-quality", "max-rate-at-quality"] = (
        "quality-within-budget"
    )
    target_quality: Annotated[float, Field(gt=0, le=1)] | None = None
    allow_sim3: bool = False
    max_power_mw: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="the optimizer's own power cap (the profile's limit otherwise)"
    )
    max_exposure_ms: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="the optimizer's own exposure cap"
    )
    decision_timeout_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=1.0, description="longest wait for a decision when the time plan leaves none"
    )
    fluorescence_reserve: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.1,
        description="fraction of the sample's initial brightness kept to the last timepoint",
    )
    policy: Literal["adaptive", "steady"] = Field(
        default="adaptive",
        description="adaptive: settings follow the bleaching every timepoint; steady: learn, "
        "then hold one planned setting (intensities comparable across time)",
    )
    steady_after: Annotated[int, Field(ge=1)] = Field(
        default=15, description="learning timepoints before a steady policy holds its setting"
    )


class SrliveSettings(_Strict):
    """srlive's own protocol fields."""

    channels: dict[str, ChannelSettings] = Field(
        default_factory=dict, description="keyed by a channel config of the plan"
    )
    optimizer: OptimizerSettings = OptimizerSettings()
    dose_budget_mj: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None, description="per-sample light-dose budget (defaults to the profile's)"
    )
    hardware_sequencing: bool = True


class Protocol(_Strict):
    """A validated protocol."""

    mda: useq.MDASequence
    srlive: SrliveSettings = SrliveSettings()
    source: Path | None = Field(default=None, exclude=True)

    def channel_settings(self, config: str) -> ChannelSettings:
        return self.srlive.channels.get(config, ChannelSettings())


@dataclass(frozen=True)
class ChannelPlan:
    """Resolved settings of one protocol channel."""

    index: int
    config: str
    line: int
    modality: Modality
    power_mw: float
    exposure_ms: float
    reconstruction: str | None


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _format(err: ValidationError, path: Path | str) -> str:
    first = err.errors()[0]
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: field '{_field(first['loc'])}': {first['msg']}{more}"


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a YAML or JSON protocol; errors are one line naming file and field."""
    path = Path(path)
    if not path.exists():
        raise ProtocolError(f"protocol file not found: {path}")
    if not path.is_file():
        raise ProtocolError(f"protocol is not a file: {path}")
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{path}: cannot read the protocol: {exc}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ProtocolError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(data, dict) and "mda" not in data and "srlive" not in data:
        data = {"mda": data}  # a plain useq-schema MDASequence: srlive's fields take defaults
    if not isinstance(data, dict) or "mda" not in data:
        raise ProtocolError(
            f"{path}: a protocol is a useq-schema MDASequence, or a mapping with an 'mda' "
            "section (and an optional 'srlive' one)"
        )
    if (found := non_finite(data)) is not None:
        loc, value = found
        raise ProtocolError(f"{path}: field '{_field(loc)}': must be a finite number, got {value}")
    try:
        protocol = Protocol.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ProtocolError(_format(exc, path)) from None
    if (mda_loc := unknown_field(data["mda"], protocol.mda, ("mda",))) is not None:
        raise ProtocolError(
            f"{path}: field '{_field(mda_loc)}': unknown field (not in useq-schema)"
        )
    try:
        check_supported(protocol.mda)
    except PlanError as exc:
        raise ProtocolError(f"{path}: field '{_field(('mda', *exc.loc))}': {exc}") from None
    return protocol


def resolve_channels(protocol: Protocol, profile: Profile) -> list[ChannelPlan]:
    """Per useq channel: laser line, modality, power, exposure, reconstruction, all checked.

    Every ``srlive.channels`` key must name a channel of the plan (the profile's default
    line when the plan has none): a key that names none would leave its channel at the
    defaults, and a typo must not change the light on the sample.
    """
    where = protocol.source or "protocol"
    channels = protocol.mda.channels or (useq.Channel(config=str(profile.defaults.laser_line)),)
    configs = [c.config for c in channels]
    for config in configs:
        if configs.count(config) > 1:
            raise ProtocolError(f"{where}: field 'mda.channels': channel {config!r} is twice")
    for key in protocol.srlive.channels:
        if key not in configs:
            raise ProtocolError(
                f"{where}: field 'srlive.channels.{key}': the plan has no channel {key!r} "
                f"(its channels: {', '.join(configs)})"
            )
    return [_resolve(protocol, profile, i, channel) for i, channel in enumerate(channels)]


def _resolve(protocol: Protocol, profile: Profile, index: int, channel: Any) -> ChannelPlan:
    where = f"{protocol.source or 'protocol'}: channel {channel.config!r}"
    settings = protocol.channel_settings(channel.config)
    line = settings.laser_line
    if line is None:
        try:
            line = int(channel.config)
        except ValueError:
            raise ProtocolError(
                f"{where}: set srlive.channels.{channel.config}.laser_line (the config name "
                "is not a laser line)"
            ) from None
    exposure = settings.exposure_ms if settings.exposure_ms is not None else channel.exposure
    try:
        light = resolve_illumination(
            profile, line=line, power_mw=settings.power_mw, exposure_ms=exposure
        )
        modality = get_modality(settings.modality, settings.frames)
    except (SafetyError, ValueError) as exc:
        raise ProtocolError(f"{where}: {exc}") from None
    if modality.structured and profile.roles.slm is None:
        raise ProtocolError(
            f"{where}: {modality.name} needs an SLM and profile {profile.name!r} has none"
        )
    recon = modality.reconstruction if settings.reconstruction is None else settings.reconstruction
    recon = None if recon == "none" else recon
    if recon is not None:
        try:  # it takes these sets and has what it needs (a model's weights)
            method = get_method(recon)
            method.picker((modality.n_angles, modality.n_phases), modality.structured)
            method.check()
        except (ValueError, FileNotFoundError) as exc:
            raise ProtocolError(f"{where}: reconstruction {recon!r}: {exc}") from None
    return ChannelPlan(
        index=index,
        config=channel.config,
        line=light.line,
        modality=modality,
        power_mw=light.power_mw,
        exposure_ms=light.exposure_ms,
        reconstruction=recon,
    )


def plan_size(protocol: Protocol, channels: list[ChannelPlan]) -> tuple[int, int]:
    """``(sets, raw frames)`` the protocol plans, counted without building the plan."""
    where = protocol.source or "protocol"
    try:
        sets = sets_per_channel(protocol.mda, MAX_PROTOCOL_FRAMES)
    except PlanError as exc:
        raise ProtocolError(f"{where}: field '{_field(('mda', *exc.loc))}': {exc}") from None
    frames = sum(n * c.modality.frames_per_set for n, c in zip(sets, channels, strict=True))
    return sum(sets), frames


def _check_size(protocol: Protocol, channels: list[ChannelPlan]) -> None:
    where = protocol.source or "protocol"
    sets, frames = plan_size(protocol, channels)
    if sets == 0:
        raise ProtocolError(
            f"{where}: field 'mda': the plan has no sets (give channels, a time_plan or "
            "stage_positions)"
        )
    if frames > MAX_PROTOCOL_FRAMES:
        raise ProtocolError(
            f"{where}: the plan has {frames:,} raw frames in {sets:,} sets; a protocol may "
            f"have at most {MAX_PROTOCOL_FRAMES:,}: split it"
        )


def _check_positions(protocol: Protocol, profile: Profile) -> None:
    """Every place the plan moves to: a stage for the axis, within its travel, x with y."""
    where = protocol.source or "protocol"
    travel = profile.limits.stage_um
    roles = {"x": profile.roles.xy_stage, "y": profile.roles.xy_stage, "z": profile.roles.z_stage}
    for event in positions_visited(protocol.mda):
        at = {"x": event.x_pos, "y": event.y_pos, "z": event.z_pos}
        if (at["x"] is None) != (at["y"] is None):
            raise ProtocolError(f"{where}: a stage position gives x or y alone: give both")
        for axis, value in at.items():
            if value is None:
                continue
            name = "an XY stage" if axis in "xy" else "a z stage"
            if roles[axis] is None:
                raise ProtocolError(
                    f"{where}: the plan moves {axis} and profile {profile.name!r} has no {name}"
                )
            if not math.isfinite(value):
                raise ProtocolError(f"{where}: stage {axis} position {value} is not finite")
            span = getattr(travel, axis)
            if span is None:
                raise ProtocolError(
                    f"{where}: the plan moves {axis} and profile {profile.name!r} gives no "
                    f"travel for it (limits.stage_um.{axis}): positions cannot be checked"
                )
            if not span[0] <= value <= span[1]:
                raise ProtocolError(
                    f"{where}: stage {axis} position {value:g} µm is outside the travel "
                    f"{span[0]:g}–{span[1]:g} µm of profile {profile.name!r}"
                )


def check_against_profile(protocol: Protocol, profile: Profile) -> list[ChannelPlan]:
    """Channels, settings, dose budget, plan size and stage positions must fit the profile:
    fail before acting. Returns the resolved channels."""
    where = protocol.source or "protocol"
    channels = resolve_channels(protocol, profile)
    budget, limit = protocol.srlive.dose_budget_mj, profile.limits.max_dose_mj
    if budget is not None and limit is not None and budget > limit:
        raise ProtocolError(
            f"{where}: field 'srlive.dose_budget_mj': {budget:g} mJ is above the profile's "
            f"limit of {limit:g} mJ per sample"
        )
    _check_size(protocol, channels)
    _check_positions(protocol, profile)
    return channels


def available_memory_bytes() -> int:
    """Memory the system can give this process now (``MemAvailable``; else all of it)."""
    try:
        with open("/proc/meminfo") as f:
            for row in f:
                if row.startswith("MemAvailable:"):
                    return int(row.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_against_microscope(protocol: Protocol, scope: Any) -> list[ChannelPlan]:
    """:func:`check_against_profile` with the connected devices' limits, and every set must
    fit in memory at the camera's frame size: call once the properties are set, before
    anything is lit."""
    channels = check_against_profile(protocol, scope.profile)
    height, width = scope.frame_shape
    budget = SET_MEMORY_SHARE * available_memory_bytes()
    for channel in channels:
        need = channel.modality.frames_per_set * height * width * 2 * SET_MEMORY_FACTOR
        if need > budget:
            raise ProtocolError(
                f"{protocol.source or 'protocol'}: channel {channel.config!r}: a set of "
                f"{channel.modality.frames_per_set:,} frames of {width}×{height} px needs "
                f"{need / 2**30:.1f} GiB and {budget / 2**30:.1f} GiB can be spared: "
                "take fewer frames per set"
            )
    return channels


def protocol_summary(protocol: Protocol) -> dict[str, Any]:
    """JSON-ready description stored with the data."""
    return protocol.model_dump(mode="json")
