"""Localisation of a stream of burst sets: what acquisition runs per set of ``--modality smlm``.

:class:`SMLMReconstructor` localises each set as it arrives (frames numbered by their place
in the stream), keeps every localisation, and returns the rendering of all of them so far
(the super-resolved image as it grows) on a grid of ``upscale`` render pixels per camera
pixel (the render pixel nearest the settings' ``render_nm`` that divides the camera pixel).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.method import SMLMSettings
from srlive.recon.smlm.render import render
from srlive.recon.smlm.table import Localizations, concat

if TYPE_CHECKING:
    from srlive.recon.streaming import StreamContext

TIMES_KEPT = 10_000


def render_upscale(pixel_nm: float, render_nm: float) -> int:
    """Render pixels per camera pixel: the nearest to ``pixel_nm / render_nm`` (>= 1)."""
    return max(1, round(pixel_nm / render_nm))


class SMLMReconstructor:
    """Localises each set of a burst stream; returns the rendering of every localisation."""

    def __init__(
        self,
        frame_shape: tuple[int, int],
        optics: SMLMOptics,
        camera: SMLMCamera,
        settings: SMLMSettings,
    ) -> None:
        self.spec = (SMLMReconstructor, (frame_shape, optics, camera, settings))
        self.frame_shape = frame_shape
        self.optics, self.camera, self.settings = optics, camera, settings
        self.upscale = render_upscale(optics.pixel_nm, settings.render_nm)
        self.render_nm = optics.pixel_nm / self.upscale
        self.image = np.zeros(
            (self.upscale * frame_shape[0], self.upscale * frame_shape[1]), np.float64
        )
        self.parts: list[Localizations] = []
        self.frames_seen = 0
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    @classmethod
    def for_context(
        cls, context: StreamContext, settings: SMLMSettings | None = None
    ) -> SMLMReconstructor:
        geometry = context.geometry
        optics = SMLMOptics(
            pixel_nm=geometry.pixel_nm, na=geometry.na, emission_nm=geometry.emission_nm
        )
        camera = SMLMCamera(offset_adu=context.offset_adu)
        return cls(context.frame_shape, optics, camera, settings or SMLMSettings())

    def localizations(self) -> Localizations:
        """Every localisation so far (frames numbered from the stream's first)."""
        empty = Localizations.empty(self.optics.pixel_nm, self.frame_shape, self.frames_seen)
        return concat([empty, *self.parts])

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        locs = localize(frames, self.optics, self.camera, self.settings.localize, self.frames_seen)
        self.frames_seen += len(frames)
        self.parts.append(locs)
        self.image += render(locs, self.render_nm, self.settings.render)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return self.image.astype(np.float32), float("nan")
