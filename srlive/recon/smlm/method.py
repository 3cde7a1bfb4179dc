"""The localisation method as data: how to localise, render and correct drift.

One record for ``srlive reconstruct --method localization`` and for the live modality to
come: :class:`SMLMSettings` holds the :class:`LocalizeSettings` (detection and fitting),
the rendering (pixel size, histogram or Gaussians) and the drift correction (blocks of
frames for redundant cross-correlation; ``None``: one block per ``DRIFT_BLOCK_FRAMES``
frames when there are at least two, else none; 0: off).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from srlive.recon.optics import format_validation_error
from srlive.recon.smlm.localize import LocalizeSettings

DRIFT_BLOCK_FRAMES = 1000


class SMLMSettings(BaseModel):
    """Localisation, rendering and drift correction of one SMLM reconstruction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    localize: LocalizeSettings = Field(default_factory=LocalizeSettings)
    render_nm: float = Field(10.0, gt=0, le=1000, description="rendered pixel (nm)")
    render: Literal["gaussian", "histogram"] = "gaussian"
    drift_blocks: int | None = Field(
        None, ge=0, le=1000, description="RCC blocks (None: one per 1000 frames; 0: off)"
    )
    drift_render_nm: float = Field(20.0, gt=0, le=500, description="RCC histogram pixel (nm)")

    def blocks_for(self, n_frames: int) -> int:
        """How many blocks drift correction uses for ``n_frames`` frames (0: none)."""
        if self.drift_blocks is not None:
            return self.drift_blocks
        blocks = n_frames // DRIFT_BLOCK_FRAMES
        return blocks if blocks >= 2 else 0

    def parameters(self) -> dict[str, Any]:
        """What shapes the output, for stores and summaries (JSON)."""
        return {"method": "localization", **self.model_dump(mode="json")}


def smlm_settings(**given: Any) -> SMLMSettings:
    """Settings from flags: LocalizeSettings fields and this model's (None: default)."""
    given = {k: v for k, v in given.items() if v is not None}
    own = {k: given.pop(k) for k in list(given) if k in SMLMSettings.model_fields}
    try:
        return SMLMSettings(localize=LocalizeSettings(**given), **own)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, "localization settings")) from None
