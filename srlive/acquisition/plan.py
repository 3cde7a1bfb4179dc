"""Turn a validated protocol into the engine's set plans."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srlive.acquisition.engine import SetPlan
from srlive.acquisition.modalities import Modality, get_modality, slm_images
from srlive.acquisition.protocol import Protocol
from srlive.profiles import Profile


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


def resolve_channels(protocol: Protocol, profile: Profile) -> list[ChannelPlan]:
    """Per useq channel: laser line, modality, power, exposure, reconstruction."""
    channels = protocol.mda.channels or ()
    configs = [(c.config, c.exposure) for c in channels] or [
        (str(profile.defaults.laser_line), None)
    ]
    resolved = []
    for index, (config, exposure) in enumerate(configs):
        settings = protocol.channel_settings(config)
        modality = get_modality(settings.modality, settings.frames)
        line = settings.laser_line if settings.laser_line is not None else int(config)
        recon = settings.reconstruction or modality.reconstruction
        resolved.append(
            ChannelPlan(
                index=index,
                config=config,
                line=line,
                modality=modality,
                power_mw=settings.power_mw
                if settings.power_mw is not None
                else profile.defaults.power_mw,
                exposure_ms=settings.exposure_ms or exposure or profile.defaults.exposure_ms,
                reconstruction=None if recon == "none" else recon,
            )
        )
    return resolved


def repeated_sets(
    modality: Modality,
    line: int,
    power_mw: float,
    exposure_ms: float,
    images: tuple[np.ndarray, ...],
    n_sets: int,
) -> list[SetPlan]:
    """``n_sets`` identical back-to-back sets of one channel (a live run, a benchmark)."""
    return [
        SetPlan(
            index=t,
            t=t,
            modality=modality,
            line=line,
            power_mw=power_mw,
            exposure_ms=exposure_ms,
            slm_images=images,
            n_frames=modality.frames_per_set,
            channel=str(line),
        )
        for t in range(n_sets)
    ]


def series_name(position: int, config: str) -> str:
    """Store group of one stage position and channel."""
    return f"p{position}_c{config}"


def build_plans(
    protocol: Protocol, profile: Profile, slm_shape: tuple[int, int] | None
) -> tuple[list[SetPlan], list[ChannelPlan]]:
    """One :class:`SetPlan` per useq event, in the protocol's axis order."""
    channels = resolve_channels(protocol, profile)
    by_config = {c.config: c for c in channels}
    images: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
    plans = []
    events = list(protocol.mda) or []
    for i, event in enumerate(events):
        config = event.channel.config if event.channel else channels[0].config
        ch = by_config[config]
        key = (ch.modality.name, ch.line)
        if key not in images:
            images[key] = (
                tuple(slm_images(profile, ch.modality, ch.line, slm_shape)) if slm_shape else ()
            )
        n_grid = protocol.mda.sizes.get("g", 0) or 1
        position = event.index.get("p", 0) * n_grid + event.index.get("g", 0)
        plans.append(
            SetPlan(
                index=i,
                t=event.index.get("t", 0),
                modality=ch.modality,
                line=ch.line,
                power_mw=ch.power_mw,
                exposure_ms=ch.exposure_ms,
                slm_images=images[key],
                n_frames=ch.modality.frames_per_set,
                position=position,
                channel=config,
                channel_index=ch.index,
                z_index=event.index.get("z", 0),
                x_um=event.x_pos,
                y_um=event.y_pos,
                z_um=event.z_pos,
                min_start_s=event.min_start_time or 0.0,
            )
        )
    return plans, channels
