"""What each learned model takes and produces (read by inference and by training).

A :class:`Task` names a model's input frames (raw frames, the measured pattern's band
components, or a burst) and its output grid; :data:`TASKS` lists the shipped models' tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from srlive.recon.learned.pattern_input import BAND_CHANNELS
from srlive.recon.learned.single_phase_input import SINGLE_PHASE_CHANNELS


@dataclass(frozen=True)
class Task:
    """What a model sees and what it must produce."""

    name: str
    pattern_frames: tuple[tuple[int, int], ...]  # (angle, phase) per input frame; () = widefield
    super_resolve: bool  # output on the 2× grid at SIM resolution (else camera-grid widefield)
    description: str
    frames: int = 0  # consecutive raw frames of a fluctuation burst (0: not a burst model)
    # "frames": the raw frames themselves; "sim-bands": the measured pattern's band
    # components (9 frames); "single-phase": residuals demodulated by the measured fringe
    # (3 frames, one phase per angle); both on the 2x grid (srlive.recon.learned.pattern_input)
    inputs: str = "frames"

    @property
    def in_channels(self) -> int:
        if self.inputs == "sim-bands":
            return len(BAND_CHANNELS)
        if self.inputs == "single-phase":
            return len(SINGLE_PHASE_CHANNELS)
        return self.frames or max(1, len(self.pattern_frames))

    @property
    def pattern_bands(self) -> bool:
        """The model reads planes made from the measured pattern, on the 2x grid."""
        return self.inputs in ("sim-bands", "single-phase")

    @property
    def fluctuation(self) -> bool:
        """A burst model: its input is consecutive frames of blinking dyes."""
        return self.frames > 0


TASKS: dict[str, Task] = {
    "dl-sim3": Task(
        "dl-sim3",
        ((0, 0), (1, 0), (2, 0)),
        True,
        "3 raw SIM frames (one phase per angle) at low light -> each frame demodulated by "
        "its own measured fringe -> SR on the 2x grid (any microscope in its trained "
        "geometry range)",
        inputs="single-phase",
    ),
    "dl-sim9": Task(
        "dl-sim9",
        tuple((a, p) for a in range(3) for p in range(3)),
        True,
        "9 raw SIM frames at low light -> the measured pattern's band components -> SR on "
        "the 2x grid (any microscope in its trained geometry range)",
        inputs="sim-bands",
    ),
    "dl-denoise": Task(
        "dl-denoise", (), False, "one low-light widefield frame -> high-SNR widefield"
    ),
    "dl-wf2sr": Task(
        "dl-wf2sr",
        (),
        True,
        "one widefield frame -> SR estimate (cross-modality, an estimate only)",
    ),
    "dl-srrf5": Task(
        "dl-srrf5",
        (),
        True,
        "5 consecutive raw frames of blinking dyes -> fluctuation SR on the 2x grid "
        "(a learned SRRF from 5 frames)",
        frames=5,
    ),
}
