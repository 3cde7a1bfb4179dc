"""Imaging modalities as data: the SLM images, frames and grouping of one SR image's set.

``sim3`` follows the reduced-frame SIM of Jin et al. (Nat. Commun. 2020, U-Net-SIM3): one
phase at each of the three angles. Taking one frame per *angle* (rather than three phases
of one angle, as some 3-frame schemes do) keeps the frequency coverage isotropic: every
orientation contributes a shifted passband, so a learned reconstruction has information in
all directions and only has to infer the missing phase diversity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srlive.acquisition.slm_patterns import draw_grating
from srlive.profiles import Profile


@dataclass(frozen=True)
class Modality:
    """How the raw frames of one set are taken.

    ``patterns`` lists, per frame, the (angle, phase) index of the SLM image to show
    (phases drawn as ``2π·phase/phase_steps``); an empty tuple means uniform illumination
    (blank SLM) for all ``frames``. ``n_angles × n_phases`` is how the store lays out a set.
    """

    name: str
    description: str
    frames: int
    n_angles: int
    n_phases: int
    patterns: tuple[tuple[int, int], ...] = ()
    phase_steps: int = 3
    reconstruction: str | None = None
    high_power: bool = False

    @property
    def structured(self) -> bool:
        return bool(self.patterns)

    @property
    def frames_per_set(self) -> int:
        return self.frames

    def with_frames(self, frames: int) -> Modality:
        """A burst modality with another number of frames per set."""
        if self.structured:
            raise ValueError(f"{self.name} has a fixed number of frames ({self.frames})")
        return Modality(
            self.name,
            self.description,
            frames,
            1,
            frames,
            (),
            self.phase_steps,
            self.reconstruction,
            self.high_power,
        )


def _grid(n_angles: int, n_phases: int) -> tuple[tuple[int, int], ...]:
    return tuple((a, p) for a in range(n_angles) for p in range(n_phases))


MODALITIES: dict[str, Modality] = {
    "widefield": Modality(
        "widefield", "uniform illumination (blank SLM), one frame per set", 1, 1, 1
    ),
    "sim9": Modality(
        "sim9",
        "2D-SIM: 3 angles × 3 phases, Wiener reconstruction",
        9,
        3,
        3,
        _grid(3, 3),
        reconstruction="wiener-sim",
    ),
    "sim3": Modality(
        "sim3",
        "reduced-frame SIM: one phase at each of 3 angles (learned reconstruction)",
        3,
        3,
        1,
        ((0, 0), (1, 0), (2, 0)),
        reconstruction="dl-sim3",
    ),
    "sim15": Modality(
        "sim15",
        "3D-SIM template: 3 angles × 5 phases (three-beam hardware)",
        15,
        3,
        5,
        _grid(3, 5),
        phase_steps=5,
    ),
    "fluctuation": Modality(
        "fluctuation",
        "uniform-light burst stream in sets of 20 frames; eSRRF/SOFI of rolling windows",
        20,
        1,
        20,
        reconstruction="esrrf",
    ),
    "smlm": Modality(
        "smlm",
        "single-molecule localisation: high power, sparse blinking, long sequences",
        500,
        1,
        500,
        reconstruction="localization",
        high_power=True,
    ),
}


def get_modality(name: str, frames: int | None = None) -> Modality:
    """A modality by name; ``frames`` changes the burst length of fluctuation/smlm."""
    try:
        modality = MODALITIES[name]
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r} (choose from {known})") from None
    if frames is not None and frames != modality.frames:
        modality = modality.with_frames(frames)
    return modality


def slm_images(
    profile: Profile, modality: Modality, line: int, slm_shape: tuple[int, int]
) -> list[np.ndarray]:
    """The SLM image of each frame of a set, drawn as the profile describes."""
    if not modality.structured:
        return [np.full(slm_shape, profile.sim.blank_value, np.uint8)]
    angles = profile.sim.angles_rad
    needed = 1 + max(a for a, _ in modality.patterns)
    if len(angles) < needed:
        raise ValueError(
            f"profile {profile.name!r} defines {len(angles)} SIM angles; {modality.name} needs "
            f"{needed}"
        )
    period_px = profile.sim.grating_period_px(line)
    drawn: dict[tuple[int, int], np.ndarray] = {}
    for a, p in modality.patterns:
        if (a, p) not in drawn:
            phase = 2 * np.pi * p / modality.phase_steps
            drawn[a, p] = draw_grating(slm_shape, period_px, angles[a], phase)
    return [drawn[key] for key in modality.patterns]
