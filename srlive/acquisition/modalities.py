"""Imaging modalities as data: which SLM images, how many frames make one SR image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.illumination import draw_grating
from srlive.profiles import Profile


@dataclass(frozen=True)
class Modality:
    """How raw frames are taken and grouped into sets."""

    name: str
    n_angles: int
    n_phases: int
    structured: bool
    reconstruction: str | None
    description: str

    @property
    def frames_per_set(self) -> int:
        return self.n_angles * self.n_phases


MODALITIES: dict[str, Modality] = {
    "widefield": Modality(
        "widefield", 1, 1, False, None, "uniform illumination (blank SLM), one frame per set"
    ),
    "sim9": Modality(
        "sim9", 3, 3, True, "wiener-sim", "2D-SIM: 3 angles × 3 phases, Wiener reconstruction"
    ),
}


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r} (choose from {known})") from None


def slm_images(
    profile: Profile, modality: Modality, line: int, slm_shape: tuple[int, int]
) -> list[np.ndarray]:
    """The SLM images of one set, angle-major, drawn as the profile describes."""
    if not modality.structured:
        return [np.full(slm_shape, profile.sim.blank_value, np.uint8)]
    angles = profile.sim.angles_rad[: modality.n_angles]
    if len(angles) < modality.n_angles:
        raise ValueError(
            f"profile {profile.name!r} defines {len(angles)} SIM angles; {modality.name} needs "
            f"{modality.n_angles}"
        )
    period_px = profile.sim.grating_period_px(line)
    phases = [2 * np.pi * k / modality.n_phases for k in range(modality.n_phases)]
    return [
        draw_grating(slm_shape, period_px, angle, phase) for angle in angles for phase in phases
    ]
