"""srlive: live super-resolution fluorescence microscopy through Micro-Manager."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "reconstruct"]


def reconstruct(
    frames: Any, method: str = "wiener-sim", profile: Any = None, device: str = "auto"
) -> Any:
    """Reconstruct one set of raw frames; see :func:`srlive.recon.api.reconstruct`."""
    from srlive.recon.api import reconstruct as _reconstruct

    return _reconstruct(frames, method, profile=profile, device=device)
