"""Live display of raw and super-resolved images (qtpy + pyqtgraph).

Names are imported lazily, so ``import srlive.viewer`` does not load Qt.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from srlive.viewer.window import LiveViewer, display_available, format_info, run_with_viewer

__all__ = ["LiveViewer", "display_available", "format_info", "run_with_viewer"]


def __getattr__(name: str) -> Any:
    if name == "display_available":  # no Qt needed to ask
        return getattr(import_module("srlive.viewer.display"), name)
    if name in __all__:
        return getattr(import_module("srlive.viewer.window"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
