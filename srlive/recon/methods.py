"""The reconstruction methods srlive implements: one record per method.

Everything that names a method reads it here: the command line (``srlive run --method``,
``srlive reconstruct --method``), protocol validation, acquisition's reconstructor per store
series (live runs and protocols), offline and distributed reconstruction, and
:func:`srlive.reconstruct`. A weights file (``.safetensors``) is a method too: the record of
its model's task, pointing at that file.

Adding a method is its module and one :class:`Method` record in :data:`METHODS`: its name,
the frames it takes (:attr:`Method.pick`, refusing sets it cannot take), its output grid,
whether it is learned, what it needs, and how to build its reconstructor for a stream of
sets (:attr:`Method.factory`, see :mod:`srlive.recon.streaming`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the reconstructors are imported when one is built (a light --help)
    from srlive.recon.streaming import StreamContext, StreamReconstructor

Picker = Callable[[np.ndarray], np.ndarray]
Pick = Callable[[str, tuple[int, int]], Picker]  # (name, layout) -> its frames; MethodError


class MethodError(ValueError):
    """A method that does not exist, or that cannot take the sets it is given."""


@dataclass(frozen=True)
class Method:
    """One reconstruction method: what it takes, gives and needs, and how to build it."""

    name: str
    summary: str
    takes: str  # the raw frames it takes, in words
    upscale: int | None  # output pixels per camera pixel (None: its settings decide)
    learned: bool
    needs: str  # what it needs beyond the frames, in words
    pick: Pick  # (name, layout) -> how to take its frames from one set
    factory: Callable[[Method, StreamContext], StreamReconstructor]
    burst: bool = False  # windows of a uniform-light burst stream (window, step)
    localizes: bool = False  # single-molecule localisation of a burst stream (a table)
    distributed: bool = True  # srlive reconstruct --workers / --scheduler
    weights: str | None = None  # learned: a shipped model's name or a weights file

    def picker(self, layout: tuple[int, int], structured: bool = True) -> Picker:
        """How to take this method's frames from a set of ``layout`` (angles x phases);
        MethodError when such sets cannot give them."""
        if (self.burst or self.localizes) and structured:
            raise MethodError(
                f"{self.name} reconstructs uniform-light bursts, not patterned SIM sets"
            )
        return self.pick(self.name, layout)

    def check(self) -> None:
        """Everything the method needs is here (a learned model's weights); else
        FileNotFoundError or ValueError, before any device or output is touched."""
        if self.learned:
            from srlive.recon.learned.weights_meta import read_weights_meta, resolve_weights

            read_weights_meta(resolve_weights(self.weights or self.name))

    def build(self, context: StreamContext) -> StreamReconstructor:
        """The reconstructor of one series of sets (checked against its layout first)."""
        self.picker(context.layout, context.structured)
        return self.factory(self, context)


# --- what each family takes -----------------------------------------------------------
def _all(frames: np.ndarray) -> np.ndarray:
    return frames


def _sim_sets(name: str, layout: tuple[int, int]) -> Picker:
    if layout[1] < 3:
        raise MethodError(
            f"{name} needs SIM sets of 3 or more phases per angle; the sets are "
            f"{layout[0]}x{layout[1]}"
        )
    return _all


def _sim9_sets(name: str, layout: tuple[int, int]) -> Picker:
    if layout != (3, 3):
        raise MethodError(f"{name} needs 3x3 SIM sets; the sets are {layout[0]}x{layout[1]}")
    return _all


def _sim3_frames(name: str, layout: tuple[int, int]) -> Picker:
    if layout == (3, 3):
        return lambda frames: frames[[0, 3, 6]]
    if layout == (3, 1):
        return _all
    raise MethodError(f"{name} needs sim3 or sim9 sets; the sets are {layout[0]}x{layout[1]}")


def _widefield(name: str, layout: tuple[int, int]) -> Picker:
    return lambda frames: frames.mean(axis=0, keepdims=True) if len(frames) > 1 else frames


def _burst(name: str, layout: tuple[int, int]) -> Picker:
    return _all


# --- how each family is built -----------------------------------------------------------
def _wiener(method: Method, context: StreamContext) -> StreamReconstructor:
    from srlive.recon.streaming import SIMReconstructor

    if context.optics is None:
        raise MethodError(f"{method.name} needs the SIM optics of the sets")
    return SIMReconstructor(context.frame_shape, context.optics)


def _fluctuation(method: Method, context: StreamContext) -> StreamReconstructor:
    from srlive.recon.streaming import FluctuationReconstructor, fluctuation_for

    settings = fluctuation_for(context.fluctuation, method.name, context.set_frames)
    return FluctuationReconstructor(settings, context.offset_adu)


def _model(method: Method, context: StreamContext) -> StreamReconstructor:
    from srlive.recon.streaming import ModelReconstructor

    name = method.weights or method.name
    return ModelReconstructor(name, context.offset_adu, context.geometry, context.device)


def _localization(method: Method, context: StreamContext) -> StreamReconstructor:
    from srlive.recon.smlm.stream import SMLMReconstructor

    return SMLMReconstructor.for_context(context)


_SIM = "SIM sets (any angles, 3 or more phases)"
_BURST = "a burst of uniform-light frames of blinking dyes (windows of --window frames)"


def _fluctuation_record(name: str, summary: str) -> Method:
    return Method(
        name,
        summary,
        _BURST,
        None,
        False,
        "blinking dyes (on the simulator: SimHub.Fluctuation=On)",
        _burst,
        _fluctuation,
        burst=True,
        distributed=False,
    )


def _learned(name: str, summary: str, takes: str, upscale: int, pick: Pick) -> Method:
    needs = f"its weights (srlive/learn/weights/{name}.safetensors, or train it)"
    return Method(name, summary, takes, upscale, True, needs, pick, _model)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "wiener-sim",
            "Wiener SIM: the pattern estimated blind on the first set, refined as sets arrive",
            _SIM,
            2,
            False,
            "the optics (profile, store or --optics); the pattern is measured",
            _sim_sets,
            _wiener,
        ),
        _fluctuation_record("esrrf", "eSRRF: radial gradient convergence of a burst window"),
        _fluctuation_record("sofi2", "SOFI: 2nd-order cumulant of a burst window"),
        _fluctuation_record("sofi3", "SOFI: 3rd-order cumulant of a burst window"),
        _fluctuation_record("sofi4", "SOFI: 4th-order cumulant of a burst window"),
        Method(
            "localization",
            "SMLM: every emitter of each frame detected and fitted (MLE Gaussian, CRLB), "
            "rendered as the localisations grow",
            "a burst of uniform-light frames of sparse blinking (photoswitching) dyes",
            None,
            False,
            "sparse photoswitching emitters (--modality smlm: high power, the activation line)",
            _burst,
            _localization,
            localizes=True,
            distributed=False,
        ),
        _learned(
            "dl-sim3",
            "learned SIM from 3 frames (one phase per angle) at low light",
            "sim3 sets, or the first phase of each angle of sim9 sets",
            2,
            _sim3_frames,
        ),
        _learned(
            "dl-sim9",
            "learned SIM from 9 frames, reading the measured pattern's band components",
            "3x3 SIM sets",
            2,
            _sim9_sets,
        ),
        _learned(
            "dl-denoise",
            "learned widefield denoising (camera grid)",
            "one widefield frame (the mean of a set's frames)",
            1,
            _widefield,
        ),
        _learned(
            "dl-wf2sr",
            "learned widefield -> SR estimate (cross-modality; an estimate only)",
            "one widefield frame (the mean of a set's frames)",
            2,
            _widefield,
        ),
    )
}
BURST_METHODS = tuple(m.name for m in METHODS.values() if m.burst)


def method_names() -> tuple[str, ...]:
    """The names of the implemented methods (a weights file is a method too)."""
    return tuple(METHODS)


def unknown(name: str) -> MethodError:
    known = ", ".join(METHODS)
    return MethodError(
        f"unknown reconstruction method {name!r} (choose from {known}, or a .safetensors file)"
    )


def is_weights_file(name: str) -> bool:
    """``name`` names a weights file rather than a method."""
    return name.endswith(".safetensors") or (name not in METHODS and Path(name).is_file())


def get_method(name: str) -> Method:
    """The method ``name``, or the learned method of the weights file ``name``.

    MethodError (a ValueError) for an unknown name; a weights file is read (its header
    only) to find its task: FileNotFoundError or ValueError when it cannot be.
    """
    if name in METHODS:
        return METHODS[name]
    if not is_weights_file(name):
        raise unknown(name)
    from srlive.recon.learned.weights_meta import read_weights_meta, resolve_weights

    meta = read_weights_meta(resolve_weights(name))
    base = METHODS.get(meta.task)
    if base is None or not base.learned:
        raise MethodError(f"{name}: a model of task {meta.task!r}, which srlive cannot run")
    return replace(base, name=str(name), upscale=meta.upscale, weights=str(name))


def describe(burst: bool | None = None, localizes: bool | None = None) -> str:
    """The methods' names for ``--help`` (``burst``, ``localizes``: only those of that kind)."""
    return " | ".join(
        m.name
        for m in METHODS.values()
        if (burst is None or m.burst == burst) and (localizes is None or m.localizes == localizes)
    )
