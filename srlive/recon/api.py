"""``srlive.reconstruct`` and ``srlive.estimate_pattern``: one set of raw frames (or one
burst, for the fluctuation methods) in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.recon.fluctuation.method import fluctuation_settings
from srlive.recon.learned.geometry import Geometry
from srlive.recon.methods import get_method
from srlive.recon.offline_methods import estimate_set_pattern
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters
from srlive.recon.wiener_sim import WienerSIM


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
    return estimate_set_pattern(_angle_major(frames, optics), optics)


def reconstruct_burst(
    frames: np.ndarray,
    method: str = "esrrf",
    profile: Profile | str | Path | None = None,
    offset_adu: float | None = None,
    optics: SIMOptics | None = None,
    **fluctuation: Any,
) -> np.ndarray:
    """eSRRF or SOFI of a burst ``(T, H, W)`` (ADU).

    Without ``window``: one SR image ``(H', W')`` of all the frames. With ``window``: the
    SR images ``(N, H', W')`` of the windows of ``window`` frames every ``step`` frames
    (default: the window), as ``srlive reconstruct`` cuts a raw file (a short tail that
    fills no step is left out). The other keywords are :class:`FluctuationSettings` fields
    (``magnification``, ``radius``, ``sensitivity``, ``temporal``,
    ``macro_pixel_correction``, ``balanced``); the camera offset comes from ``offset_adu``,
    else ``optics``, else ``profile`` (default: the simulated microscope).
    """
    from srlive.recon.offline_fluctuation import check_method_fields

    stack = np.asarray(frames)
    if stack.ndim != 3 or len(stack) < 2:
        raise ValueError(f"{method} needs a burst of 2 or more frames (T, H, W), got {stack.shape}")
    check_method_fields(method, fluctuation)
    window = fluctuation.pop("window", None)
    step = fluctuation.pop("step", None)
    one = window is None
    window = len(stack) if one else window
    settings = fluctuation_settings(
        method, window=window, step=window if step is None else step, **fluctuation
    )
    if settings.window > len(stack):
        raise ValueError(
            f"the window ({settings.window} frames) is longer than the {len(stack)} frames"
        )
    offset = _optics(optics, profile, offset_adu).offset_adu
    if one:
        return settings.reconstruct(stack, offset)
    firsts = range(0, len(stack) - settings.window + 1, settings.step)
    return np.stack([settings.reconstruct(stack[i : i + settings.window], offset) for i in firsts])


def reconstruct(
    frames: np.ndarray,
    method: str = "wiener-sim",
    profile: Profile | str | Path | None = None,
    device: str = "auto",
    offset_adu: float | None = None,
    optics: SIMOptics | None = None,
    **fluctuation: Any,
) -> np.ndarray:
    """Reconstruct one set of raw frames (ADU, (C, H, W) or (A, P, H, W)), or one burst.

    ``wiener-sim`` estimates the pattern from the frames themselves; the ``dl-*`` methods
    run the shipped learned models (or a path to weights). Optics come from ``optics``
    (a :class:`SIMOptics`), else from ``profile`` (default: the simulated microscope);
    ``offset_adu`` overrides the camera offset of either. The fluctuation methods
    (``esrrf``, ``sofi2``-``sofi4``) take a burst ``(T, H, W)`` and the keywords of
    :func:`reconstruct_burst` (``window``, ``step``, ``magnification``, ...).
    """
    recon = get_method(method)
    if recon.burst:
        return reconstruct_burst(frames, method, profile, offset_adu, optics, **fluctuation)
    if fluctuation:
        raise ValueError(f"{', '.join(fluctuation)}: not options of {method}")
    frames = np.asarray(frames)
    if not recon.learned:  # wiener-sim
        opt = _optics(optics, profile, offset_adu)
        stack = _angle_major(frames, opt)
        sim = WienerSIM.from_optics(stack.shape[-2:], opt)
        sim.calibrate(stack)
        return sim.reconstruct(stack)
    result = reconstruct_learned(frames, method, profile, device, offset_adu, optics, trust=False)
    return result.image


def reconstruct_learned(
    frames: np.ndarray,
    method: str = "dl-sim9",
    profile: Profile | str | Path | None = None,
    device: str = "auto",
    offset_adu: float | None = None,
    optics: SIMOptics | None = None,
    trust: bool = True,
) -> Any:
    """A learned method on one set, with how far to trust it: a
    :class:`srlive.recon.learned.infer.Result` (``image``, ``confidence``, ``uncertainty``:
    the expected error per output pixel, ``checks``; ``trust=False``: the image only).

    The optics are those of ``wiener-sim`` (``optics``, else ``profile``; ``offset_adu``
    overrides the camera offset): pixel, NA, emission and the nominal pattern period give the
    model the acquisition's geometry, judged against the range it was trained on. ``frames``
    is the model's own input (3 frames one phase per angle for ``dl-sim3``, one widefield
    frame) or a whole SIM set in the optics' layout, from which the model's frames are taken
    as ``srlive reconstruct`` takes them.
    """
    from srlive.recon.learned.infer import learned

    recon = get_method(method)
    opt = _optics(optics, profile, offset_adu)
    model = learned(recon.weights or method, device, opt.offset_adu, Geometry.from_optics(opt))
    stack = np.asarray(frames).reshape(-1, *np.shape(frames)[-2:])
    if len(stack) != model.frames_per_set and len(stack) == opt.frames_per_set:
        stack = recon.picker((opt.n_angles, opt.n_phases))(opt.to_angle_major(stack))
    return model(stack, trust=trust)
