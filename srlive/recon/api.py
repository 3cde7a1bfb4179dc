"""``srlive.reconstruct`` and ``srlive.estimate_pattern``: one set of raw frames in."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters, estimate_sim_parameters
from srlive.recon.wiener_sim import WienerSIM

METHODS = ("wiener-sim", "dl-sim3", "dl-sim9", "dl-denoise", "dl-wf2sr")


def _optics(
    optics: SIMOptics | None, profile: Profile | str | Path | None, offset_adu: float | None
) -> SIMOptics:
    """The optics given, else the profile's (default: the simulated microscope)."""
    if optics is None:
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        optics = SIMOptics.from_profile(prof)
    if offset_adu is not None:
        optics = optics.with_overrides(offset_adu=offset_adu)
    return optics


def _angle_major(frames: np.ndarray, optics: SIMOptics) -> np.ndarray:
    stack = np.asarray(frames).reshape(-1, *np.shape(frames)[-2:])
    if len(stack) != optics.frames_per_set:
        raise ValueError(
            f"expected one set of {optics.frames_per_set} frames "
            f"({optics.n_angles} angles x {optics.n_phases} phases), got {len(stack)}"
        )
    return optics.to_angle_major(stack)


def estimate_pattern(
    frames: np.ndarray,
    optics: SIMOptics | None = None,
    profile: Profile | str | Path | None = None,
) -> SIMParameters:
    """The fringe parameters of one raw SIM set, with a verdict per angle.

    ``result.report()`` lists, per angle, ``angle_deg``, ``period_nm``, ``modulation``,
    ``found``, ``significance``, ``source`` and the phases.
    """
    optics = _optics(optics, profile, None)
    stack = _angle_major(frames, optics)
    return estimate_sim_parameters(
        stack,
        optics.pixel_nm,
        optics.na,
        optics.emission_nm,
        optics.n_angles,
        optics.n_phases,
        optics.offset_adu,
        nominal=optics.nominal,
    )


def reconstruct(
    frames: np.ndarray,
    method: str = "wiener-sim",
    profile: Profile | str | Path | None = None,
    device: str = "auto",
    offset_adu: float | None = None,
    optics: SIMOptics | None = None,
) -> np.ndarray:
    """Reconstruct one set of raw frames (ADU, (C, H, W) or (A, P, H, W)).

    ``wiener-sim`` estimates the pattern from the frames themselves; the ``dl-*`` methods
    run the shipped learned models (or a path to weights). Optics come from ``optics``
    (a :class:`SIMOptics`), else from ``profile`` (default: the simulated microscope);
    ``offset_adu`` overrides the camera offset of either.
    """
    frames = np.asarray(frames)
    if method == "wiener-sim":
        opt = _optics(optics, profile, offset_adu)
        stack = _angle_major(frames, opt)
        sim = WienerSIM.from_optics(stack.shape[-2:], opt)
        sim.calibrate(stack)
        return sim.reconstruct(stack)
    if method.startswith("dl-") or method.endswith(".safetensors"):
        from srlive.learn.infer import Geometry, learned

        stack = frames.reshape(-1, *frames.shape[-2:])
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        geometry = Geometry.from_profile(prof)
        offset = 100.0 if offset_adu is None else offset_adu
        return learned(method, device, offset, geometry)(stack, trust=False).image
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
