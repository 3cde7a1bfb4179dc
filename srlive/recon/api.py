"""``srlive.reconstruct``: one set of raw frames in, one reconstructed image out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.recon.wiener_sim import WienerSIM

METHODS = ("wiener-sim", "dl-sim3", "dl-sim9", "dl-denoise", "dl-wf2sr")


def reconstruct(
    frames: np.ndarray,
    method: str = "wiener-sim",
    profile: Profile | str | Path | None = None,
    device: str = "auto",
    offset_adu: float = 100.0,
) -> np.ndarray:
    """Reconstruct one set of raw frames (ADU, (C, H, W) or (A, P, H, W)).

    ``wiener-sim`` estimates the pattern from the frames themselves (9 frames, angle-major);
    the ``dl-*`` methods run the shipped learned models (or a path to weights). Optics come
    from ``profile`` (default: the simulated microscope).
    """
    frames = np.asarray(frames)
    stack = frames.reshape(-1, *frames.shape[-2:])
    if method == "wiener-sim":
        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        sim = WienerSIM(
            stack.shape[-2:],
            prof.optics.pixel_nm,
            prof.optics.na,
            prof.optics.emission_for(prof.defaults.laser_line),
            offset_adu=offset_adu,
        )
        sim.calibrate(stack)
        return sim.reconstruct(stack)
    if method.startswith("dl-") or method.endswith(".safetensors"):
        from srlive.learn.infer import Geometry, learned

        prof = profile if isinstance(profile, Profile) else load_profile(profile)
        geometry = Geometry.from_profile(prof)
        return learned(method, device, offset_adu, geometry)(stack, trust=False).image
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
