"""The series stores of a run: each series' OME-Zarr store and reconstructor, and counters.

A series (a stage position and channel of a protocol, a modality of a live run) gets its
store and its reconstructor (:mod:`srlive.recon.methods`) with its first set. The pipeline
(:mod:`srlive.pipeline`) calls :meth:`SeriesWriter.series_for` on the acquisition thread and
:meth:`~SeriesWriter.write_raw`, :meth:`~SeriesWriter.write_sr` and
:meth:`~SeriesWriter.write_skipped` from its store writer thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.acquisition.engine import EXTRA_FRAME_COLUMNS, SetPlan
from srlive.acquisition.modalities import Modality
from srlive.profiles import Profile
from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.recon.learned.geometry import Geometry
from srlive.recon.methods import get_method
from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import pattern_columns, pattern_row
from srlive.recon.streaming import (
    FluctuationReconstructor,
    ModelReconstructor,
    SIMReconstructor,
    StreamContext,
    StreamReconstructor,
)
from srlive.storage.guard import OutputLock, claim_output
from srlive.storage.noise import NoiseRecord
from srlive.storage.omezarr import AcquisitionStore

log = logging.getLogger(__name__)

SR_EXTRA_COLUMNS = ("recon_ms", "confidence", "latency_ms")
WINDOW_COLUMNS = ("window_first_t", "window_frames")  # fluctuation SR rows: what each window holds


def set_optics(profile: Profile, modality: Modality, line: int, offset_adu: float) -> SIMOptics:
    """The profile's optics for ``line`` with the modality's layout (its SLM pattern as the
    nominal one when its angles are the modality's)."""
    optics = SIMOptics.from_profile(profile, line)
    nominal = optics.nominal
    if nominal is not None and nominal.angles_deg is not None:
        nominal = nominal if len(nominal.angles_deg) == modality.n_angles else None
    fields = optics.model_dump()
    fields.update(
        n_angles=modality.n_angles,
        n_phases=modality.n_phases,
        offset_adu=offset_adu,
        nominal=nominal.model_dump() if nominal else None,
    )
    return SIMOptics(**fields)


@dataclass
class SeriesState:
    """One (position, channel) series: its store, reconstructor and counters."""

    name: str
    modality: str
    store: AcquisitionStore
    recon: StreamReconstructor | None
    sets: int = 0  # raw sets stored
    frames: int = 0
    sr_images: int = 0
    sr_skipped: int = 0
    next_t: int = 0  # time index the next set of this series gets


@dataclass
class SeriesWriter:
    """Writes each complete set (and its SR image) into its series' OME-Zarr store."""

    profile: Profile
    frame_shape: tuple[int, int]
    camera: NoiseRecord  # the camera's noise model, recorded in every series' store
    run_info: dict[str, Any]
    path_for: Callable[[str], Path]
    overwrite: bool = False
    series: dict[str, SeriesState] = field(default_factory=dict)
    device: str = "auto"  # for learned reconstructions
    fluctuation: FluctuationSettings | None = None  # rolling windows (None: one per set)
    smlm: Any = None  # localisation settings (srlive.recon.smlm.method.SMLMSettings)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def offset_adu(self) -> float:
        """The camera offset subtracted before reconstruction."""
        return self.camera.offset_adu

    def series_for(self, name: str, plan: SetPlan, reconstruction: str | None) -> SeriesState:
        """The series ``name``, created (store and reconstructor) by its first set."""
        with self._lock:
            return self.series.get(name) or self._open(name, plan, reconstruction)

    def _open(self, name: str, plan: SetPlan, reconstruction: str | None) -> SeriesState:
        modality = plan.modality
        recon: StreamReconstructor | None = None
        run_extra: dict[str, Any] = {}
        if reconstruction is not None:
            sim = modality.structured and modality.n_phases >= 3
            context = StreamContext(
                self.frame_shape,
                (modality.n_angles, modality.n_phases),
                modality.structured,
                self.offset_adu,
                Geometry.from_profile(self.profile, plan.line),
                set_optics(self.profile, modality, plan.line, self.offset_adu) if sim else None,
                self.device,
                self.fluctuation,
                {
                    "offset_adu": self.camera.offset_adu,
                    "e_per_adu": self.camera.e_per_adu,
                    "read_noise_e": self.camera.read_noise_e,
                },
                self.smlm,
            )
            recon = get_method(reconstruction).build(context)
            if isinstance(recon, FluctuationReconstructor):
                run_extra["fluctuation"] = recon.settings.parameters()
            if hasattr(recon, "parameters") and getattr(recon, "every_set", False):
                run_extra["smlm"] = recon.parameters()
        up = recon.upscale if recon else 1
        sr_shape = (up * self.frame_shape[0], up * self.frame_shape[1]) if recon else None
        store = AcquisitionStore.create(
            self.path_for(name),
            frame_shape=self.frame_shape,
            pixel_nm=self.profile.optics.pixel_nm,
            n_angles=modality.n_angles,
            n_phases=modality.n_phases,
            sr_shape=sr_shape,
            sr_pixel_nm=self.profile.optics.pixel_nm / up if recon else None,
            laser_lines=self.profile.laser_lines,
            profile=self.profile.model_dump(mode="json"),
            run={
                **self.run_info,
                "series": name,
                "modality": modality.name,
                "laser_line": plan.line,
                "power_mw": plan.power_mw,
                "exposure_ms": plan.exposure_ms,
                **run_extra,
            },
            sr_method=reconstruction if recon else None,
            overwrite=self.overwrite,
            camera=self.camera,
            sr_error=isinstance(recon, ModelReconstructor) and recon.error_map,
            extra_frame_columns=EXTRA_FRAME_COLUMNS,
            extra_sr_columns=SR_EXTRA_COLUMNS
            + (
                pattern_columns(modality.n_angles, modality.n_phases)
                if isinstance(recon, SIMReconstructor)
                else WINDOW_COLUMNS
                if isinstance(recon, FluctuationReconstructor)
                else tuple(getattr(recon, "sr_columns", ()))
            ),
        )
        state = SeriesState(name, modality.name, store, recon)
        self.series[name] = state
        return state

    def write_raw(
        self,
        state: SeriesState,
        t: int,
        plan: SetPlan,
        frames: np.ndarray,
        metas: list[dict[str, Any]],
    ) -> None:
        """Store the raw set ``frames`` (n, H, W) as time point ``t`` of ``state``."""
        modality = plan.modality
        raw_set = frames.reshape(modality.n_angles, modality.n_phases, *frames.shape[-2:])
        state.store.write_set(t, raw_set, metas)
        state.sets += 1
        state.frames += len(frames)

    def write_sr(
        self,
        state: SeriesState,
        t: int,
        sr: np.ndarray,
        meta: dict[str, Any],
        error: np.ndarray | None = None,
    ) -> None:
        """Store the SR image of set ``t``, its table row (time_s, recon_ms, pattern...) and
        a learned model's expected error map (``sr_error``)."""
        if isinstance(state.recon, SIMReconstructor) and (params := state.recon.current_params()):
            meta = {**meta, **pattern_row(params)}
        state.store.write_sr(t, sr, {"t": t, **meta}, error)
        state.sr_images += 1

    def write_skipped(self, state: SeriesState, t: int, meta: dict[str, Any]) -> None:
        """Record that set ``t`` was not reconstructed (the live pipeline fell behind)."""
        state.store.write_sr_skipped(t, {"t": t, **meta})
        state.sr_skipped += 1

    def close(self, complete: bool) -> None:
        """Close every series' store (all of them, even after one fails); the first error."""
        first: Exception | None = None
        for state in self.series.values():
            try:
                self._write_tables(state)
            except Exception as exc:  # the raw data is stored; the store says incomplete
                log.error("%s: tables not stored: %s", state.name, exc)
                first, complete = first or exc, False
        for state in self.series.values():
            try:
                state.store.close(complete=complete)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    @staticmethod
    def _write_tables(state: SeriesState) -> None:
        """The tables a reconstructor keeps (localisations, drift) into its series' store."""
        tables = getattr(state.recon, "tables", None)
        if tables is None or state.store.failed:
            return
        for name, (columns, description) in tables().items():
            state.store.write_table(name, columns, description)

    @property
    def failed(self) -> str | None:
        """The first failed store write of any series, or None."""
        return next((s.store.failed for s in self.series.values() if s.store.failed), None)

    @property
    def frames_stored(self) -> int:
        return sum(s.frames for s in self.series.values())

    @property
    def sr_images(self) -> int:
        return sum(s.sr_images for s in self.series.values())

    @property
    def sr_skipped(self) -> int:
        return sum(s.sr_skipped for s in self.series.values())

    @property
    def max_upscale(self) -> int:
        """The finest SR grid any series here may produce (SR pixels per camera pixel)."""
        ups = [s.recon.upscale for s in self.series.values() if s.recon is not None]
        return max([2, (self.fluctuation or FluctuationSettings()).upscale, *ups])

    def recon_times_ms(self) -> list[float]:
        return [t for s in self.series.values() if s.recon for t in s.recon.times_ms]


def create_root_group(path: Path, attrs: dict[str, Any], overwrite: bool) -> OutputLock:
    """The root of a multi-series store: a plain Zarr v3 group describing its series.

    The directory is claimed (see :func:`srlive.storage.guard.claim_output`); the caller
    holds the returned lock until the protocol's stores are closed.
    """
    lock = claim_output(path, overwrite=overwrite)
    try:
        zarr.open_group(str(path), mode="a", zarr_format=3, attributes={"srlive": attrs})
    except BaseException:
        lock.release()
        raise
    return lock
