"""A SIM or learned method resolved against an input's sets, for offline reconstruction.

:func:`resolve_method` turns a method (a name in :mod:`srlive.recon.methods`, or a weights
file) into a :class:`SetMethod` fitted to one input: it takes the frames the method needs
from each set and returns a :class:`SetResult`. ``wiener-sim`` estimates the pattern blind
on set 0 and every later set next to set 0's estimate (:class:`WienerSets`), so each set's
result depends on set 0 and itself only, in any order and any process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from srlive.recon.file_input import SetSource
from srlive.recon.learned.geometry import Geometry
from srlive.recon.methods import MethodError, describe, get_method
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters, estimate_sim_parameters, pattern_row


@dataclass
class SetResult:
    """One set's SR image and what its reconstruction found."""

    image: np.ndarray
    confidence: float = math.nan  # learned methods only
    error: np.ndarray | None = None  # learned methods: the error expected per SR pixel
    params: SIMParameters | None = None  # wiener-sim: the pattern estimated on this set
    wiener: float | None = None
    recon_ms: float = 0.0

    def sr_meta(self, t: int, time_s: float) -> dict[str, Any]:
        """The set's row of the store's SR table."""
        meta = {"t": t, "time_s": time_s, "recon_ms": self.recon_ms, "confidence": self.confidence}
        return meta | (pattern_row(self.params) if self.params is not None else {})

    def entry(self, t: int) -> dict[str, Any]:
        """The set's entry in the JSON summary."""
        entry: dict[str, Any] = {
            "t": t,
            "pattern": None if self.params is None else self.params.report(),
            "summary": None if self.params is None else self.params.summary(),
            "wiener": self.wiener,
            "recon_ms": round(self.recon_ms, 2),
        }
        if not math.isnan(self.confidence):
            entry["confidence"] = self.confidence
        return entry


@dataclass
class SetMethod:
    """A reconstruction resolved and checked against an input (before any output exists)."""

    upscale: int
    pick: Callable[[np.ndarray], np.ndarray]
    run: Callable[[np.ndarray, int], SetResult]
    patterned: bool  # estimates the pattern per set (its columns go into the SR table)
    wiener: WienerSets | None = None  # wiener-sim: its reference (set 0's estimate)
    error_map: bool = False  # its results carry the error expected per SR pixel

    def __call__(self, frames: np.ndarray, t: int) -> SetResult:
        """Reconstruct one angle-major set ``(A·P, H, W)``, the input's set ``t``."""
        start = time.perf_counter()
        result = self.run(self.pick(frames), t)
        result.recon_ms = (time.perf_counter() - start) * 1e3
        return result


class WienerSets:
    """``wiener-sim`` over the sets of one input: set 0 blind, every other set next to it."""

    def __init__(self, shape: tuple[int, int], optics: SIMOptics) -> None:
        from srlive.recon.wiener_sim import WienerSIM

        self.optics = optics
        self.sim = WienerSIM.from_optics(shape, optics)
        self.reference: SIMParameters | None = None

    def use_reference(self, reference: SIMParameters, wiener: float) -> None:
        """Take set 0's estimate and Wiener parameter (computed by another process)."""
        self.reference = reference
        self.sim.wiener_w = wiener

    def __call__(self, frames: np.ndarray, t: int) -> SetResult:
        from srlive.recon.sim_params import refine_sim_parameters

        if self.reference is None:  # set 0 first: blind calibration, w from its noise
            if t != 0:
                raise RuntimeError("wiener-sim: set 0 must be calibrated first")
            self.reference = self.sim.calibrate(frames)
        opt = self.optics
        if t == 0:
            params = self.reference
        else:
            params = refine_sim_parameters(
                frames,
                self.reference,
                opt.pixel_nm,
                opt.na,
                opt.emission_nm,
                opt.offset_adu,
                nominal=opt.nominal,
            )
        self.sim.set_parameters(params)
        return SetResult(self.sim.reconstruct(frames), params=params, wiener=self.sim.wiener_w)


def resolve_method(method: str, source: SetSource, optics: SIMOptics) -> SetMethod:
    """A SIM or learned method (a registered name or a weights file), fitted to ``source``.

    Raises (ValueError, FileNotFoundError) for an unknown method, missing or invalid weights,
    or sets the method cannot take.
    """
    where = "the store" if source.format == "srlive-store" else source.source
    recon = get_method(method)
    if source.run.get("modality") == "fluctuation" and not recon.learned:
        methods = describe(burst=True)
        raise ValueError(f"{where} holds fluctuation bursts, not SIM sets: use --method {methods}")
    if recon.burst:
        raise ValueError(f"{method} reconstructs bursts (srlive.recon.offline_fluctuation)")
    try:
        pick = recon.picker(source.layout)
    except MethodError as exc:
        raise ValueError(f"{exc} ({where})") from None
    if not recon.learned:  # wiener-sim: set 0 blind, every other set next to it
        sets = WienerSets(source.shape, optics)
        return SetMethod(2, pick, sets, patterned=True, wiener=sets)
    from srlive.recon.learned.infer import learned

    geometry = Geometry.from_optics(optics)
    model = learned(recon.weights or method, "auto", optics.offset_adu, geometry)

    def infer(frames: np.ndarray, t: int) -> SetResult:
        result = model(frames)
        return SetResult(result.image, result.confidence, result.uncertainty)

    return SetMethod(model.upscale, pick, infer, False, error_map=model.has_uncertainty)


def estimate_set_pattern(frames: np.ndarray, optics: SIMOptics) -> SIMParameters:
    """The fringe parameters of one angle-major SIM set, with a verdict per angle."""
    return estimate_sim_parameters(
        frames,
        optics.pixel_nm,
        optics.na,
        optics.emission_nm,
        optics.n_angles,
        optics.n_phases,
        optics.offset_adu,
        nominal=optics.nominal,
    )


def stored_raw(frames: np.ndarray, where: str) -> np.ndarray:
    """Frames as the store's uint16 raw (floats rounded); ValueError when they do not fit."""
    if frames.dtype == np.uint16:
        return frames
    low, high = float(frames.min()), float(frames.max())
    if low < 0 or high > 65535:
        raise ValueError(
            f"{where}: pixel values {low:g}..{high:g} do not fit a store's uint16 raw frames; "
            "write the SR images to a .tif instead (--out X.tif)"
        )
    return np.rint(frames).astype(np.uint16) if frames.dtype.kind == "f" else frames.astype("u2")
