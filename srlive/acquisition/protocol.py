"""Automated imaging protocols: a useq-schema MDASequence plus srlive's own fields.

A protocol file (YAML or JSON) has two sections::

    mda:        # any useq-schema MDASequence: time_plan, stage_positions, grid_plan,
                # z_plan, channels (channel ``config`` names a laser line, e.g. "488")
    srlive:     # per channel: modality, power, exposure, reconstruction; optimizer; budget

The whole protocol is validated against the profile before any device moves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import useq
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from srlive.acquisition.modalities import MODALITIES, get_modality
from srlive.profiles import Profile
from srlive.safety import SafetyError

RECONSTRUCTIONS = (
    "none",
    "wiener-sim",
    "dl-sim3",
    "dl-sim9",
    "dl-denoise",
    "dl-wf2sr",
    "srrf",
    "localization",
)


class ProtocolError(ValueError):
    """A protocol file is missing, malformed or incompatible with the profile."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelSettings(_Strict):
    """How one useq channel is imaged."""

    modality: str = "sim9"
    laser_line: int | None = Field(default=None, description="default: the channel config name")
    power_mw: Annotated[float, Field(ge=0)] | None = None
    exposure_ms: Annotated[float, Field(gt=0)] | None = None
    reconstruction: str | None = Field(default=None, description="default: the modality's")
    frames: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="frames per set for fluctuation/smlm bursts"
    )

    @model_validator(mode="after")
    def _known(self) -> ChannelSettings:
        if self.modality not in MODALITIES:
            raise ValueError(
                f"unknown modality {self.modality!r} (choose from {', '.join(MODALITIES)})"
            )
        if self.reconstruction is not None and self.reconstruction not in RECONSTRUCTIONS:
            known = ", ".join(RECONSTRUCTIONS)
            raise ValueError(
                f"unknown reconstruction {self.reconstruction!r} (choose from {known})"
            )
        return self


class OptimizerSettings(_Strict):
    """Online parameter optimisation (see the optimizer)."""

    enabled: bool = False
    goal: Literal["quality-within-budget", "min-dose-at-quality", "max-rate-at-quality"] = (
        "quality-within-budget"
    )
    target_quality: Annotated[float, Field(gt=0, le=1)] | None = None
    allow_sim3: bool = False
    max_power_mw: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="the optimizer's own power cap (the profile's limit otherwise)"
    )
    max_exposure_ms: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="the optimizer's own exposure cap"
    )
    decision_timeout_s: Annotated[float, Field(ge=0)] = Field(
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

    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    optimizer: OptimizerSettings = OptimizerSettings()
    dose_budget_mj: Annotated[float, Field(gt=0)] | None = Field(
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


def _format(err: ValidationError, path: Path | str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: field '{loc}': {first['msg']}{more}"


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a YAML or JSON protocol; errors are one line naming file and field."""
    path = Path(path)
    if not path.exists():
        raise ProtocolError(f"protocol file not found: {path}")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ProtocolError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict) or "mda" not in data:
        raise ProtocolError(f"{path}: a protocol is a mapping with an 'mda' section")
    try:
        return Protocol.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ProtocolError(_format(exc, path)) from None


def check_against_profile(protocol: Protocol, profile: Profile) -> None:
    """Every channel, power, exposure and modality must fit the profile: fail before acting."""
    where = protocol.source or "protocol"
    channels = protocol.mda.channels or (useq.Channel(config=str(profile.defaults.laser_line)),)
    for channel in channels:
        settings = protocol.channel_settings(channel.config)
        line = settings.laser_line
        if line is None:
            try:
                line = int(channel.config)
            except ValueError:
                raise ProtocolError(
                    f"{where}: channel {channel.config!r}: set srlive.channels.{channel.config}."
                    "laser_line (the config name is not a laser line)"
                ) from None
        if line not in profile.roles.lasers:
            raise ProtocolError(
                f"{where}: channel {channel.config!r}: laser line {line} nm is "
                f"not in profile {profile.name!r}"
            )
        modality = get_modality(settings.modality)
        if modality.structured and profile.roles.slm is None:
            raise ProtocolError(
                f"{where}: channel {channel.config!r}: {modality.name} needs an "
                f"SLM and profile {profile.name!r} has none"
            )
        power = settings.power_mw if settings.power_mw is not None else profile.defaults.power_mw
        exposure = settings.exposure_ms or channel.exposure or profile.defaults.exposure_ms
        try:
            profile.check_power(line, power)
            profile.check_exposure(exposure)
        except SafetyError as exc:
            raise ProtocolError(f"{where}: channel {channel.config!r}: {exc}") from None
    if protocol.mda.z_plan is not None and profile.roles.z_stage is None:
        raise ProtocolError(
            f"{where}: z_plan needs a z stage and profile {profile.name!r} has none"
        )
    moves_xy = any(p.x is not None or p.y is not None for p in protocol.mda.stage_positions)
    if moves_xy and profile.roles.xy_stage is None:
        raise ProtocolError(f"{where}: stage_positions need an XY stage in the profile")


def protocol_summary(protocol: Protocol) -> dict[str, Any]:
    """JSON-ready description stored with the data."""
    return protocol.model_dump(mode="json")
