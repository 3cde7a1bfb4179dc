"""Turn a validated protocol into the engine's set plans, one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from srlive.acquisition.engine import SetPlan
from srlive.acquisition.modalities import Modality, slm_images
from srlive.acquisition.protocol import (
    ChannelPlan,
    Protocol,
    check_against_profile,
    plan_size,
    resolve_channels,
)
from srlive.profiles import Profile

__all__ = [
    "ChannelPlan",
    "ProtocolPlans",
    "build_plans",
    "repeated_sets",
    "resolve_channels",
    "series_name",
]


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


class ProtocolPlans:
    """A protocol's set plans, one per useq event, built as the engine asks for them.

    Iterable as often as needed; ``len()`` is the number of sets, counted without building
    any (a plan of millions of sets holds one at a time, never a list of them).
    """

    def __init__(
        self,
        protocol: Protocol,
        channels: list[ChannelPlan],
        images: dict[str, tuple[np.ndarray, ...]],
        n_sets: int,
    ) -> None:
        self.protocol = protocol
        self.channels = channels
        self.images = images
        self.n_sets = n_sets

    def __len__(self) -> int:
        return self.n_sets

    def __iter__(self) -> Iterator[SetPlan]:
        by_config = {c.config: c for c in self.channels}
        grid = self.protocol.mda.grid_plan
        n_grid = grid.num_positions() if grid is not None else 1
        for i, event in enumerate(self.protocol.mda):
            config = event.channel.config if event.channel else self.channels[0].config
            ch = by_config[config]
            yield SetPlan(
                index=i,
                t=event.index.get("t", 0),
                modality=ch.modality,
                line=ch.line,
                power_mw=ch.power_mw,
                exposure_ms=ch.exposure_ms,
                slm_images=self.images[config],
                n_frames=ch.modality.frames_per_set,
                position=event.index.get("p", 0) * n_grid + event.index.get("g", 0),
                channel=config,
                channel_index=ch.index,
                z_index=event.index.get("z", 0),
                x_um=event.x_pos,
                y_um=event.y_pos,
                z_um=event.z_pos,
                min_start_s=event.min_start_time or 0.0,
            )


def build_plans(
    protocol: Protocol, profile: Profile, slm_shape: tuple[int, int] | None
) -> tuple[ProtocolPlans, list[ChannelPlan]]:
    """The protocol's set plans (checked against ``profile`` first) and its channels."""
    channels = check_against_profile(protocol, profile)
    drawn: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}
    images = {}
    for ch in channels:  # drawn now: a pattern that cannot be drawn fails before acquiring
        key = (ch.modality.name, ch.line)
        if key not in drawn:
            drawn[key] = (
                tuple(slm_images(profile, ch.modality, ch.line, slm_shape)) if slm_shape else ()
            )
        images[ch.config] = drawn[key]
    n_sets, _ = plan_size(protocol, channels)
    return ProtocolPlans(protocol, channels, images, n_sets), channels
