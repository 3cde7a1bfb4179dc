"""pycromanager's ``Core`` (snake_case) presented with the camelCase API the engine uses.

pycromanager reaches a running Micro-Manager over its ZMQ bridge (``Core()``) or starts a
headless pymmcore core in this process (``start_headless(..., python_backend=True)``); both
expose MMCore's methods in snake_case. :class:`SnakeCaseCore` turns calls like
``core.getImageWidth()`` into ``core.get_image_width()`` and smooths the few places where
the two APIs differ (image and metadata popping, flat pixel buffers from the bridge).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np


@cache
def camel_to_snake(name: str) -> str:
    """``getImageWidth`` -> ``get_image_width`` (the rule pycromanager applies)."""
    first = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z0-9])([A-Z])", r"\1_\2", first).lower()


class SnakeCaseCore:
    """Adapter: a pycromanager snake_case core behind Micro-Manager's camelCase names."""

    def __init__(self, snake_core: Any) -> None:
        self._core = snake_core

    @property
    def wrapped(self) -> Any:
        return self._core

    def __getattr__(self, name: str) -> Any:
        core = self.__dict__["_core"]
        snake = camel_to_snake(name)
        if hasattr(core, snake):
            return getattr(core, snake)
        return getattr(core, name)

    # --- places where the snake_case API differs ---------------------------------------
    def _as_image(self, pix: Any) -> np.ndarray:
        image = np.asarray(pix)
        if image.ndim == 1:  # the Java bridge sends flat buffers
            image = image.reshape(self._core.get_image_height(), self._core.get_image_width())
        return image

    def getImage(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self._as_image(self._core.get_image(*args))

    def popNextImage(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self._as_image(self._core.pop_next_image(*args))

    def getLastImage(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self._as_image(self._core.get_last_image(*args))

    def popNextImageAndMD(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, dict[str, str]]:
        """Image and metadata tags, through pycromanager's tagged-image call."""
        tagged = self._core.pop_next_tagged_image()
        tags = tagged.tags
        if not isinstance(tags, dict):  # Java bridge: a JSONObject-like mapping
            tags = {str(k): tags.get(k) for k in list(tags)}
        return self._as_image(tagged.pix), {k: str(v) for k, v in tags.items()}

    def getLoadedDevices(self) -> tuple[str, ...]:
        devices = self._core.get_loaded_devices()
        if hasattr(devices, "size") and hasattr(devices, "get"):  # Java StrVector
            return tuple(devices.get(i) for i in range(devices.size()))
        return tuple(devices)
