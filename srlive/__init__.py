"""srlive: live super-resolution fluorescence microscopy through Micro-Manager."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "FLUCTUATION_METHODS",
    "FluctuationSettings",
    "SIMOptics",
    "__version__",
    "estimate_pattern",
    "localize",
    "reconstruct",
    "reconstruct_learned",
]


def reconstruct(
    frames: Any,
    method: str = "wiener-sim",
    profile: Any = None,
    device: str = "auto",
    offset_adu: float | None = None,
    optics: Any = None,
    **fluctuation: Any,
) -> Any:
    """Reconstruct one set of raw frames, or one burst with ``esrrf``/``sofi2``-``4``
    (``window=``, ``step=``, ...); see :func:`srlive.recon.api.reconstruct`."""
    from srlive.recon.api import reconstruct as _reconstruct

    return _reconstruct(
        frames,
        method,
        profile=profile,
        device=device,
        offset_adu=offset_adu,
        optics=optics,
        **fluctuation,
    )


def reconstruct_learned(
    frames: Any,
    method: str = "dl-sim9",
    profile: Any = None,
    device: str = "auto",
    offset_adu: float | None = None,
    optics: Any = None,
) -> Any:
    """A learned method on one set with its confidence, expected error map and input checks;
    see :func:`srlive.recon.api.reconstruct_learned`."""
    from srlive.recon.api import reconstruct_learned as _learned

    return _learned(frames, method, profile, device, offset_adu, optics)


def estimate_pattern(frames: Any, optics: Any = None, profile: Any = None) -> Any:
    """The fringe parameters and per-angle verdicts of one raw SIM set.

    See :func:`srlive.recon.api.estimate_pattern`.
    """
    from srlive.recon.api import estimate_pattern as _estimate

    return _estimate(frames, optics=optics, profile=profile)


def __getattr__(name: str) -> Any:
    if name == "SIMOptics":
        from srlive.recon.optics import SIMOptics

        return SIMOptics
    if name == "localize":  # SMLM: frames -> a localisation table (srlive.recon.smlm)
        from srlive.recon.smlm import localize

        return localize
    if name in ("FluctuationSettings", "FLUCTUATION_METHODS"):
        from srlive.recon.fluctuation import method

        return getattr(method, name)
    raise AttributeError(name)
