"""The localisation method as data: how to localise, render and correct drift.

One record for ``srlive reconstruct --method localization`` (or ``dl-smlm``) and for the
live modality: :class:`SMLMSettings` says which localiser runs (``method``) and holds its
settings (:class:`LocalizeSettings`: detection and fitting; :class:`LearnedLocalizeSettings`:
the learned model and its detection thresholds), the rendering (pixel size, histogram or
Gaussians) and the drift correction (blocks of frames for redundant cross-correlation;
``None``: one block per ``DRIFT_BLOCK_FRAMES`` frames when there are at least two, else
none; 0: off).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from srlive.recon.optics import format_validation_error
from srlive.recon.smlm.learned import TASK, LearnedLocalizeSettings, localize_learned
from srlive.recon.smlm.localize import LocalizeSettings, SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.table import Localizations

DRIFT_BLOCK_FRAMES = 1000


class SMLMSettings(BaseModel):
    """Localisation, rendering and drift correction of one SMLM reconstruction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["localization", "dl-smlm"] = Field(
        "localization", description="MLE Gaussian fitting, or the learned localiser"
    )
    localize: LocalizeSettings = Field(default_factory=LocalizeSettings)
    learned: LearnedLocalizeSettings = Field(default_factory=LearnedLocalizeSettings)
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
        own = self.model_dump(mode="json", exclude={"learned", "localize"})
        detail = {"learned": self.learned} if self.method == TASK else {"localize": self.localize}
        return {**own, **{k: v.model_dump(mode="json") for k, v in detail.items()}}

    def fit_description(self) -> str:
        """The localiser in words (exports' "Fit method")."""
        if self.method == TASK:
            return f"srlive dl-smlm ({self.learned.weights})"
        return f"srlive MLE Gaussian ({self.localize.model})"

    def run(
        self,
        frames: np.ndarray,
        optics: SMLMOptics,
        camera: SMLMCamera,
        first_frame: int = 0,
    ) -> Localizations:
        """Localise ``frames`` with this method."""
        if self.method == TASK:
            return localize_learned(frames, optics, camera, self.learned, first_frame)
        return localize(frames, optics, camera, self.localize, first_frame)


LEARNED_FIELDS = ("threshold", "device", "weights")  # the flags dl-smlm takes


def smlm_settings(method: str = "localization", **given: Any) -> SMLMSettings:
    """Settings from flags: this model's fields and those of the method's localiser
    (LocalizeSettings, or LearnedLocalizeSettings for ``dl-smlm``); None: default."""
    given = {k: v for k, v in given.items() if v is not None}
    own = {k: given.pop(k) for k in list(given) if k in SMLMSettings.model_fields}
    try:
        if method == TASK:
            unused = sorted(set(given) - set(LEARNED_FIELDS))
            if unused:
                raise ValueError(f"{', '.join(unused)}: not used by {TASK}")
            learned = LearnedLocalizeSettings(**given)
            return SMLMSettings(method=TASK, learned=learned, **own)
        return SMLMSettings(localize=LocalizeSettings(**given), **own)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, "localization settings")) from None
