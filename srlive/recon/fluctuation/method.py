"""Fluctuation reconstructions as data: the method, its parameters and its rolling windows.

A burst stream is cut into **sets of ``step`` frames** (what the store holds per time point,
laid out 1 x ``step``); the SR image of time point ``t`` reconstructs the **window** of the
``window`` frames that end with set ``t`` (``window`` a multiple of ``step``). The first
``window/step - 1`` sets of a series have no SR image (recorded as skipped rows). The live
pipeline and ``srlive reconstruct`` follow this one convention, so a live store and an
offline reconstruction of its raw bursts line up set for set.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from srlive.recon.fluctuation.esrrf import esrrf
from srlive.recon.fluctuation.sofi import sofi
from srlive.recon.optics import format_validation_error

FLUCTUATION_METHODS = ("esrrf", "sofi2", "sofi3", "sofi4")


class FluctuationSettings(BaseModel):
    """One fluctuation reconstruction and its window over the burst stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["esrrf", "sofi2", "sofi3", "sofi4"] = "esrrf"
    magnification: int = Field(4, ge=1, le=20, description="eSRRF: fine pixels per camera pixel")
    radius: float = Field(1.5, ge=0.2, le=10, description="eSRRF ring radius (camera pixels)")
    sensitivity: float = Field(1.0, gt=0, le=16, description="eSRRF: RGC exponent")
    temporal: Literal["AVG", "VAR", "TAC2"] = Field("AVG", description="eSRRF temporal analysis")
    macro_pixel_correction: bool = True
    balanced: bool = Field(False, description="SOFI: balanced (linear in brightness)")
    window: int = Field(100, ge=2, le=100_000, description="frames per reconstructed window")
    step: int = Field(20, ge=1, le=100_000, description="frames between windows (set size)")

    @model_validator(mode="after")
    def _window_fits(self) -> FluctuationSettings:
        if self.window % self.step:
            raise ValueError(
                f"the window ({self.window} frames) must be a multiple of the step ({self.step})"
            )
        if self.method.startswith("sofi") and self.window < self.order + 1:
            raise ValueError(f"{self.method} needs a window of at least {self.order + 1} frames")
        if self.method == "esrrf" and self.temporal == "TAC2" and self.window < 2:
            raise ValueError("eSRRF TAC2 needs a window of at least 2 frames")
        return self

    @property
    def order(self) -> int:
        """The SOFI cumulant order (2 for eSRRF, unused there)."""
        return int(self.method[-1]) if self.method.startswith("sofi") else 2

    @property
    def upscale(self) -> int:
        """Output pixels per camera pixel."""
        return self.magnification if self.method == "esrrf" else 1

    @property
    def sets_per_window(self) -> int:
        return self.window // self.step

    def parameters(self) -> dict[str, Any]:
        """The parameters that shape the output (for stores, tables and summaries)."""
        common = {"method": self.method, "window": self.window, "step": self.step}
        if self.method == "esrrf":
            return {
                **common,
                "magnification": self.magnification,
                "radius": self.radius,
                "sensitivity": self.sensitivity,
                "temporal": self.temporal,
                "macro_pixel_correction": self.macro_pixel_correction,
            }
        return {**common, "order": self.order, "balanced": self.balanced}

    def reconstruct(self, burst: np.ndarray, offset_adu: float = 0.0) -> np.ndarray:
        """The SR image of one window (``(T, H, W)`` raw frames), float32."""
        if self.method == "esrrf":
            return esrrf(
                burst,
                self.magnification,
                self.radius,
                self.sensitivity,
                self.temporal,
                self.macro_pixel_correction,
                offset_adu,
            )
        return sofi(burst, self.order, self.balanced, offset_adu)


def fluctuation_settings(method: str, **overrides: Any) -> FluctuationSettings:
    """Settings for ``method`` with the given fields (``None`` values keep the defaults).

    A one-line ValueError names every bad field.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return FluctuationSettings(method=method, **given)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, f"{method} settings")) from None


class RollingWindow:
    """The last ``sets_per_window`` sets of a stream; full windows as one burst."""

    def __init__(self, settings: FluctuationSettings) -> None:
        self.settings = settings
        self._sets: deque[np.ndarray] = deque(maxlen=settings.sets_per_window)

    def add(self, frames: np.ndarray) -> np.ndarray | None:
        """Add one set (``step`` frames); the window burst once it is full, else None."""
        if len(frames) != self.settings.step:
            raise ValueError(
                f"a set of {len(frames)} frames does not match the step ({self.settings.step})"
            )
        self._sets.append(np.asarray(frames))
        if len(self._sets) < (self._sets.maxlen or 0):
            return None
        return np.concatenate(list(self._sets), axis=0)

    def reset(self) -> None:
        """Forget the sets seen (a gap in the stream: the next window starts afresh)."""
        self._sets.clear()
