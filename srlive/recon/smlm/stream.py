"""Localisation of a stream of burst sets: what acquisition runs per set of ``--modality smlm``.

:class:`SMLMReconstructor` localises each set as it arrives (frames numbered by their place
in the stream), corrects drift on a rolling window (:class:`~.drift_live.RollingDrift`),
keeps every localisation, and returns the rendering of all of them so far (the
super-resolved image as it grows) on a grid of ``upscale`` render pixels per camera pixel
(the render pixel nearest the settings' ``render_nm`` that divides the camera pixel).

Its output accumulates, so every set must be localised (:attr:`every_set`: the live
pipeline queues them rather than skipping to the newest). With inference in a child process
the child's instance localises and renders; each set's localisations come back to the
acquisition process's instance (:meth:`child_extra` / :meth:`absorb_child`), which holds the
table the store gets (:meth:`tables`) and the figures the viewer and the density control
read (:attr:`last`, :meth:`rate_per_s`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from srlive.recon.smlm.drift_live import DEFAULT_BLOCK_FRAMES, RollingDrift
from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, localize
from srlive.recon.smlm.method import SMLMSettings
from srlive.recon.smlm.render import render
from srlive.recon.smlm.table import Localizations, concat

if TYPE_CHECKING:
    from srlive.recon.streaming import StreamContext

TIMES_KEPT = 10_000
RATE_WINDOW_SETS = 10  # the localisation rate over the latest sets
SR_COLUMNS = ("localizations", "set_localizations", "density_per_um2", "drift_x_nm", "drift_y_nm")
LOCALIZATION_TABLE = "localizations"
DRIFT_TABLE = "drift"


def render_upscale(pixel_nm: float, render_nm: float) -> int:
    """Render pixels per camera pixel: the nearest to ``pixel_nm / render_nm`` (>= 1)."""
    return max(1, round(pixel_nm / render_nm))


@dataclass(frozen=True)
class SetLocalizations:
    """What one set gave: its frames, localisations, density, precision and drift."""

    first_frame: int
    n_frames: int
    count: int
    density_per_um2: float  # localisations per frame per µm² of the field
    median_uncertainty_nm: float
    drift_x_nm: float  # subtracted from this set's localisations (its last frame's)
    drift_y_nm: float
    done_s: float  # perf_counter() when localised

    def row(self, total: int) -> dict[str, float]:
        """Its SR table row (``total``: localisations of the series so far)."""
        return {
            "localizations": total,
            "set_localizations": self.count,
            "density_per_um2": self.density_per_um2,
            "drift_x_nm": self.drift_x_nm,
            "drift_y_nm": self.drift_y_nm,
        }


class SMLMReconstructor:
    """Localises each set of a burst stream; returns the rendering of every localisation."""

    every_set = True  # cumulative output: the live pipeline localises every set
    sr_columns = SR_COLUMNS

    def __init__(
        self,
        frame_shape: tuple[int, int],
        optics: SMLMOptics,
        camera: SMLMCamera,
        settings: SMLMSettings,
        drift_block_frames: int = DEFAULT_BLOCK_FRAMES,
    ) -> None:
        self.spec = (
            SMLMReconstructor,
            (frame_shape, optics, camera, settings, drift_block_frames),
        )
        self.frame_shape = frame_shape
        self.optics, self.camera, self.settings = optics, camera, settings
        self.upscale = render_upscale(optics.pixel_nm, settings.render_nm)
        self.render_nm = optics.pixel_nm / self.upscale
        self.area_um2 = frame_shape[0] * frame_shape[1] * (optics.pixel_nm / 1000.0) ** 2
        off = settings.drift_blocks == 0
        self.drift = None if off else RollingDrift(frame_shape, optics.pixel_nm, drift_block_frames)
        self.image: np.ndarray | None = None  # the growing rendering (where it is rendered)
        self.parts: list[Localizations] = []
        self.sets: deque[SetLocalizations] = deque(maxlen=RATE_WINDOW_SETS)
        self.last: SetLocalizations | None = None
        self.count = 0
        self.frames_seen = 0
        self.drift_rows: list[tuple[int, float, float]] = []  # (last frame, x, y) per set
        self.times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    @classmethod
    def for_context(
        cls, context: StreamContext, settings: SMLMSettings | None = None
    ) -> SMLMReconstructor:
        """From a store series' context: the profile's optics, its camera's offset, gain and
        read noise (srlive's sCMOS defaults where it records none)."""
        geometry = context.geometry
        optics = SMLMOptics(
            pixel_nm=geometry.pixel_nm, na=geometry.na, emission_nm=geometry.emission_nm
        )
        noise = context.camera or {}
        camera = SMLMCamera(
            offset_adu=context.offset_adu,
            **{k: float(v) for k, v in noise.items() if k != "offset_adu" and v is not None},
        )
        settings = settings or context.smlm or SMLMSettings()
        return cls(context.frame_shape, optics, camera, settings)

    # --- the stream ---------------------------------------------------------------------
    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, float]:
        """Localise a set; the rendering of every localisation so far (and NaN confidence)."""
        start = time.perf_counter()
        raw = localize(frames, self.optics, self.camera, self.settings.localize, self.frames_seen)
        locs, info = self._corrected(raw, len(frames))
        self._add(locs, info)
        if self.image is None:
            shape = (self.upscale * self.frame_shape[0], self.upscale * self.frame_shape[1])
            self.image = np.zeros(shape, np.float64)
        self.image += render(locs, self.render_nm, self.settings.render)
        self.times_ms.append((time.perf_counter() - start) * 1000.0)
        return self.image.astype(np.float32), float("nan")

    def _corrected(
        self, raw: Localizations, n_frames: int
    ) -> tuple[Localizations, SetLocalizations]:
        """The set's localisations with the drift known so far subtracted, and its figures."""
        drift = np.zeros(2)
        if self.drift is not None:
            shift = self.drift.at(raw["frame"])
            locs = raw.replace(y_nm=raw["y_nm"] - shift[:, 0], x_nm=raw["x_nm"] - shift[:, 1])
            drift = self.drift.at(np.array([self.frames_seen + n_frames - 1]))[0]
            self.drift.add(raw)
        else:
            locs = raw
        uncertainty = locs["uncertainty_nm"]
        info = SetLocalizations(
            first_frame=self.frames_seen,
            n_frames=n_frames,
            count=len(locs),
            density_per_um2=len(locs) / max(n_frames, 1) / self.area_um2,
            median_uncertainty_nm=float(np.median(uncertainty)) if len(locs) else float("nan"),
            drift_x_nm=float(drift[1]),
            drift_y_nm=float(drift[0]),
            done_s=time.perf_counter(),
        )
        return locs, info

    def _add(self, locs: Localizations, info: SetLocalizations) -> None:
        self.parts.append(locs)
        self.sets.append(info)
        self.last = info
        self.count += info.count
        self.frames_seen = info.first_frame + info.n_frames
        last_frame = info.first_frame + info.n_frames - 1
        self.drift_rows.append((last_frame, info.drift_x_nm, info.drift_y_nm))

    # --- the inference child's results, in the acquisition process ----------------------
    def child_extra(self) -> dict[str, Any]:
        """What the acquisition process's instance needs of the set just localised here."""
        assert self.last is not None and self.parts
        return {"smlm_columns": self.parts[-1].columns, "smlm_set": asdict(self.last)}

    def absorb_child(self, extra: dict[str, Any]) -> None:
        """Take the set the child localised (its table part and figures)."""
        info = SetLocalizations(**extra["smlm_set"])
        locs = Localizations(
            extra["smlm_columns"],
            self.optics.pixel_nm,
            self.frame_shape,
            info.first_frame + info.n_frames,
        )
        self._add(locs, info)

    # --- what the viewer, the density control and the store read ------------------------
    def rate_per_s(self) -> float:
        """Localisations per second over the latest sets (NaN before two sets)."""
        sets = list(self.sets)
        if len(sets) < 2:
            return float("nan")
        span = sets[-1].done_s - sets[0].done_s
        return sum(s.count for s in sets[1:]) / span if span > 0 else float("nan")

    def details(self) -> dict[str, float]:
        """The live figures: localisations, their rate, density and precision."""
        last = self.last
        return {
            "localizations": self.count,
            "locs_per_s": self.rate_per_s(),
            "density_per_um2": last.density_per_um2 if last else float("nan"),
            "precision_nm": last.median_uncertainty_nm if last else float("nan"),
        }

    def sr_row(self) -> dict[str, float]:
        """The SR table row of the set just localised."""
        return self.last.row(self.count) if self.last else {}

    def localizations(self) -> Localizations:
        """Every localisation so far (drift-corrected as they arrived)."""
        empty = Localizations.empty(self.optics.pixel_nm, self.frame_shape, self.frames_seen)
        return concat([empty, *self.parts])

    def tables(self) -> dict[str, tuple[dict[str, np.ndarray], str]]:
        """The tables the series' store gets at its end: name -> (columns, description)."""
        out = {
            LOCALIZATION_TABLE: (
                self.localizations().columns,
                "one row per localisation (frame: place in the series' stream; nm from the "
                "frame's corner; drift-corrected live, tables/drift)",
            )
        }
        if self.drift is not None and self.drift_rows:
            rows = np.asarray(self.drift_rows, np.float64)
            out[DRIFT_TABLE] = (
                {
                    "frame": rows[:, 0].astype(np.int64),
                    "x_nm": rows[:, 1],
                    "y_nm": rows[:, 2],
                },
                "drift subtracted live (rolling-window RCC) at each set's last frame",
            )
        return out

    def parameters(self) -> dict[str, Any]:
        """What shapes the output, for the store's run attributes (JSON)."""
        return {
            **self.settings.parameters(),
            "render_pixel_nm": self.render_nm,
            "optics": self.optics.model_dump(),
            "camera": self.camera.model_dump(),
            "drift_block_frames": None if self.drift is None else self.drift.block_frames,
        }
