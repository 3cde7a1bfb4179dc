"""Reconstructors of a stream of sets: what acquisition (live runs and protocols) runs per set.

Each is a callable ``recon(frames) -> (image, confidence)`` with its ``upscale`` (output
pixels per camera pixel), the compute times of its latest sets (``times_ms``) and a ``spec``
``(factory, args)`` from which the live pipeline's inference process builds the same
reconstructor (:mod:`srlive.pipeline.process`). :mod:`srlive.recon.methods` builds them from
a :class:`StreamContext`; one is made per store series.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.recon.learned.geometry import Geometry
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters
from srlive.recon.wiener_sim import WienerSIM

REFINE_EVERY_SETS = 10  # live pattern refinement (≈0.2–0.8 s on 2 cores per estimate)
TIMES_KEPT = 10_000  # reconstruction times kept for summaries (bounded: long runs stay flat)


@dataclass(frozen=True)
class StreamContext:
    """What a series' reconstructor is built for: its sets, the microscope, and where."""

    frame_shape: tuple[int, int]
    layout: tuple[int, int]  # angles x phases of a set (1 x frames for a burst)
    structured: bool  # patterned illumination (else uniform light: widefield or a burst)
    offset_adu: float  # the camera offset subtracted before reconstruction
    geometry: Geometry  # what learned models judge their input against
    optics: SIMOptics | None = None  # SIM sets (3 or more phases): the optics, nominal pattern
    device: str = "auto"  # learned models: auto | cpu | cuda
    fluctuation: FluctuationSettings | None = None  # rolling windows (None: one per set)
    camera: dict[str, float | None] | None = None  # offset_adu, e_per_adu, read_noise_e
    smlm: Any = None  # localisation: srlive.recon.smlm.method.SMLMSettings (None: defaults)

    @property
    def set_frames(self) -> int:
        return self.layout[0] * self.layout[1]


class SIMReconstructor:
    """Wiener SIM calibrated on the first set of its series and refined as sets arrive.

    The first set is estimated around the nominal pattern of the optics (the profile's SLM
    pattern: the fallback for an angle whose fringe is not found); every
    :data:`REFINE_EVERY_SETS`-th set is re-estimated next to the last estimate, which stays
    the fallback. The estimate in use goes into every SR row (``pattern_*`` columns).
    """

    upscale = 2

    def __init__(self, frame_shape: tuple[int, int], optics: SIMOptics) -> None:
        self.spec = (SIMReconstructor, (frame_shape, optics))
        self.sim = WienerSIM.from_optics(frame_shape, optics)
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)
        self.sets_seen = 0
        self.child_sim_params: SIMParameters | None = None  # the inference process's estimate

    def child_extra(self) -> dict[str, Any]:
        return {"sim_params": self.sim.params}

    def absorb_child(self, extra: dict[str, Any]) -> None:
        self.child_sim_params = extra["sim_params"]  # what the child calibrated

    def current_params(self) -> SIMParameters | None:
        """The pattern estimate in use (the inference child's when it runs there)."""
        return self.child_sim_params or self.sim.params

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        if self.sim.params is None:
            self.sim.calibrate(frames)
        elif self.sets_seen % REFINE_EVERY_SETS == 0:
            self.sim.refine(frames)
        self.sets_seen += 1
        start = time.perf_counter()
        result = self.sim.reconstruct(frames)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return result, float("nan")


class FluctuationReconstructor:
    """eSRRF or SOFI of a window of ``window_sets`` consecutive sets (the burst stream).

    Called with the window's frames, oldest first (the live pipeline keeps the window's sets
    in its ring).
    """

    def __init__(self, settings: FluctuationSettings, offset_adu: float) -> None:
        self.spec = (FluctuationReconstructor, (settings, offset_adu))
        self.settings = settings
        self.offset_adu = offset_adu
        self.upscale = settings.upscale
        self.window_sets = settings.sets_per_window
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        result = self.settings.reconstruct(frames, self.offset_adu)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return result, float("nan")


def fluctuation_for(
    settings: FluctuationSettings | None, method: str, set_frames: int
) -> FluctuationSettings:
    """``settings`` with ``method``; without settings (a protocol's bursts), or when their
    step is not the series' set size, every set is one window (the method's defaults)."""
    base = (settings or FluctuationSettings()).model_dump()
    base["method"] = method
    if settings is None or base["step"] != set_frames:
        base["window"] = base["step"] = set_frames
    return FluctuationSettings(**base)


class ModelReconstructor:
    """A learned model (shipped weights, or a weights file) with its confidence per output.

    The weights are loaded on the first call, in the process that makes it: with inference
    in a child process the acquisition process only reads the file's header (its output
    grid), never the model. The 3-frame SIM model keeps its series' fringe
    (:class:`~srlive.recon.learned.single_phase_input.FringeTracker`: measured blind on the
    first set and every few sets, in between only each set's phases), as Wiener SIM's live
    reconstructor keeps its pattern estimate.
    """

    def __init__(
        self,
        method: str,
        offset_adu: float,
        geometry: Geometry | None = None,
        device: str = "auto",
    ) -> None:
        from srlive.recon.learned.weights_meta import read_weights_meta, resolve_weights

        # how to build the same reconstructor elsewhere (the inference process)
        self.spec = (ModelReconstructor, (method, offset_adu, geometry, device))
        self._args = (method, device, offset_adu, geometry)
        header = read_weights_meta(resolve_weights(method))
        self.upscale = header.upscale
        self.error_map = header.uncertainty  # its results carry an error map (last_error)
        self.last_error: np.ndarray | None = None  # the latest result's expected error map
        self._model: Any = None
        self._fringe: Any = None  # the series' FringeTracker (3-frame SIM model), once loaded
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    @property
    def loaded(self) -> bool:
        """The model is loaded in this process."""
        return self._model is not None

    @property
    def model(self) -> Any:
        if self._model is None:
            from srlive.recon.learned.infer import learned

            self._model = learned(*self._args)
            if self._model.task.inputs == "single-phase":
                from srlive.recon.learned.single_phase_input import FringeTracker

                self._fringe = FringeTracker()
        return self._model

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        model = self.model
        start = time.perf_counter()
        result = model(frames, fringe=self._fringe)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        self.last_error = result.uncertainty
        return result.image, result.confidence


class StreamReconstructor(Protocol):
    """What every stream reconstructor is (these here, and
    :class:`srlive.recon.smlm.stream.SMLMReconstructor`)."""

    upscale: int  # output pixels per camera pixel
    spec: tuple[Any, tuple[Any, ...]]  # (factory, args): the same one, built elsewhere
    times_ms: deque[float]  # compute times of its latest sets

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]: ...


# Optional parts of a stream reconstructor, read with getattr by the pipeline and the writer:
# ``every_set`` (True: every set is reconstructed, none skipped for a newer one), ``sr_columns``
# and ``sr_row()`` (extra SR table columns and the latest set's values), ``details()`` (live
# figures for the viewer), ``tables()`` (name -> (columns, description), stored at the end),
# ``child_extra()`` / ``absorb_child(extra)`` (what the inference child sends back per set).
