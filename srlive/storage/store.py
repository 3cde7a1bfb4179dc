"""The writer of one acquisition store (:class:`AcquisitionStore`; layout in
:mod:`srlive.storage.omezarr`): creating, resuming and the set-by-set bookkeeping."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.common import JSON
from zarr.storage import LocalStore

from srlive.storage.durable import Durable
from srlive.storage.files import (
    child_array,
    child_group,
    compressors,
    image_pipeline,
    json_object,
    jsonable,
    software,
)
from srlive.storage.guard import (
    OutputLock,
    StoreBusyError,
    claim_output,
    holds_lock,
    only_lock_file,
)
from srlive.storage.ngff import (
    OME_GROUP,
    collection_ome,
    image_ome,
    raw_axes,
    register_in_parents,
    series_ome,
    sr_axes,
)
from srlive.storage.noise import CAMERA_KEY, NoiseRecord
from srlive.storage.tables import (
    DEFAULT_SR_EXTRAS,
    SR_COLUMN_DEFAULTS,
    SR_STATUSES,
    Table,
    frame_columns,
)
from srlive.storage.writes import Writes

__all__ = ["LAYOUT_VERSION", "AcquisitionStore"]

LAYOUT_VERSION = 2  # 2: the root a bioformats2raw-style collection, the camera noise model


class AcquisitionStore(Writes, Durable):
    """Writer of one acquisition as OME-Zarr 0.5; see the module docstring for the layout."""

    def __init__(self) -> None:  # use AcquisitionStore.create
        raise TypeError("use AcquisitionStore.create(path, ...)")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        frame_shape: tuple[int, int],
        pixel_nm: float,
        n_angles: int,
        n_phases: int,
        sr_shape: tuple[int, int] | None = None,
        sr_pixel_nm: float | None = None,
        laser_lines: Sequence[int] = (),
        profile: dict[str, Any] | None = None,
        run: dict[str, Any] | None = None,
        sr_method: str | None = None,
        extra_frame_columns: Sequence[str] = (),
        overwrite: bool = False,
        inputs: Sequence[str | os.PathLike[str]] = (),
        extra_sr_columns: Sequence[str] = DEFAULT_SR_EXTRAS,
        interval_s: float | None = None,
        compressor: str | None = None,
        compressor_level: int | None = None,
        flush_interval_s: float | None = 0.5,
        fsync: bool = True,
        n_sets: int | None = None,
        camera: NoiseRecord | None = None,
        sr_error: bool = False,
    ) -> AcquisitionStore:
        """Create a new store at ``path`` (``FileExistsError`` unless ``overwrite``).

        The directory is claimed through :func:`srlive.storage.guard.claim_output`:
        ``overwrite`` replaces only an srlive store no other process is writing, and never
        one of ``inputs`` (paths the caller reads from). The lock is held until :meth:`close`.

        A raw-only store needs only the frames' geometry: without ``sr_shape`` it has no SR
        image, without ``laser_lines`` no power columns, and ``profile`` and ``run`` (the
        microscope's profile and the run's settings, as recorded) default to empty.

        ``interval_s`` is the nominal set interval (time scale); when None it is estimated
        from the frames' ``time_s`` at close. ``flush_interval_s`` auto-flushes on writes
        (None: only explicit :meth:`flush`). ``fsync`` makes flushes survive power loss.

        ``n_sets`` sizes the time axis for a known number of sets up front, for outputs whose
        sets are written out of order by other processes (:func:`write_set_chunks`, then
        :meth:`record_set`); sets not yet written read as missing until they are, and the
        store says ``complete`` only when closed complete. Their tables are sorted by set at
        close, so they do not depend on the order sets finished in.

        ``camera`` is the noise model the frames were taken with (root ``srlive.camera``;
        offline reconstruction subtracts its offset). A store created inside a store this
        process writes (a live run's further modality, a protocol's series) lists its images
        in that store's ``OME/series``.

        ``sr_error`` adds the ``sr_error`` image beside ``sr`` (same grid and units): the
        error a learned reconstruction expects at each of its pixels (:meth:`write_sr`'s
        ``error``).
        """
        self = object.__new__(cls)
        self.path = Path(path)
        h, w = (int(v) for v in frame_shape)
        a, p = int(n_angles), int(n_phases)
        if min(h, w, a, p) < 1:
            raise ValueError("frame_shape, n_angles and n_phases must be positive")
        if sr_shape is not None and sr_pixel_nm is None:
            raise ValueError("sr_pixel_nm is required when sr_shape is given")
        frame_cols = frame_columns(laser_lines, extra_frame_columns)
        # the directory: claimed here, or by the command that holds it (the run's top store)
        if holds_lock(self.path):
            if not only_lock_file(self.path):
                raise StoreBusyError(f"{self.path} is being written by this process")
            self._claim = None
        else:
            self._claim = claim_output(self.path, overwrite=overwrite, inputs=tuple(inputs))
        try:
            self._build(
                (h, w),
                a,
                p,
                frame_cols,
                pixel_nm=pixel_nm,
                sr_shape=sr_shape,
                sr_pixel_nm=sr_pixel_nm,
                laser_lines=laser_lines,
                profile=profile or {},
                run=run or {},
                sr_method=sr_method,
                extra_sr_columns=extra_sr_columns,
                interval_s=interval_s,
                compressor=compressor,
                compressor_level=compressor_level,
                flush_interval_s=flush_interval_s,
                fsync=fsync,
                camera=camera,
                sr_error=sr_error,
            )
            if n_sets is not None:
                self._presize(int(n_sets))
        except BaseException:
            if self._claim is not None:
                self._claim.release()
            raise
        return self

    @classmethod
    def resume(cls, path: str | os.PathLike[str]) -> AcquisitionStore:
        """Reopen an incomplete, pre-sized store (``create(n_sets=...)``) to add its missing
        sets: the writer's lock is taken again and the tables are cut back to their durable
        rows, so a set whose rows were not made durable before an interruption is simply
        written again. :meth:`done_sets` says which sets are stored.
        """
        self = object.__new__(cls)
        self.path = Path(path)
        self._claim = OutputLock.acquire(self.path)
        try:
            self._reopen()
        except BaseException:
            self._claim.release()
            raise
        return self

    def _reopen(self) -> None:
        root = zarr.open_group(LocalStore(self.path), mode="r+", zarr_format=3)
        state = json_object(root.attrs.get("srlive"), f"{self.path}: the srlive attributes")
        if state.get("complete"):
            raise ValueError(f"{self.path} is complete: nothing to resume")
        if not state.get("presized"):
            raise ValueError(f"{self.path} was not written set by set in any order: cannot resume")
        self._root = root
        self._state = state
        self._start_writing(flush_interval_s=0.5, fsync=True, interval_s=None)
        h, w = (int(v) for v in state["frame_shape"])
        self.frame_shape = (h, w)
        self.n_angles, self.n_phases = int(state["n_angles"]), int(state["n_phases"])
        self.pixel_nm = float(state["pixel_nm"])
        self.sr_pixel_nm = state.get("sr_pixel_nm")
        self.sr_method = state.get("sr_method")
        with image_pipeline():
            self._raw = child_array(root, "raw/0")
            self._sr = child_array(root, "sr/0") if "sr" in root else None
            self._sr_error = child_array(root, "sr_error/0") if "sr_error" in root else None
        tables = child_group(root, "tables")
        self._frames = Table.reopen(child_group(tables, "frames"), int(state["frames_flushed"]))
        self._sr_table = Table.reopen(child_group(tables, "sr"), int(state["sr_flushed"]))
        self._frame_cols = list(self._frames.columns)
        self._sr_cols = list(self._sr_table.columns)
        self.frames_written = self._frames.length
        self.sr_written = self._sr_table.length
        self.sr_skipped = 0
        self._frames_flushed = self._frames.length
        self._sr_flushed = self._sr_table.length
        self._n_sets = int(state.get("sets_flushed", 0))
        self._n_sr_t = self._n_sets
        self._sorted_tables = True

    def _presize(self, n_sets: int) -> None:
        """Size the time axes for ``n_sets`` sets (written in any order)."""
        for arr in (self._raw, self._sr, self._sr_error):
            if arr is not None:
                arr.resize((n_sets, *arr.shape[1:]))
        self._sorted_tables = True
        self._write_state(presized=n_sets)

    def done_sets(self) -> set[int]:
        """The sets whose raw frames and SR image are recorded durably."""
        with self._lock:
            t = self._sr_table.arrays["t"][: self._sr_table.length]
            return {int(v) for v in np.unique(t)}

    def record_set(
        self,
        t: int,
        frame_meta: Sequence[Mapping[str, Any]],
        crcs: Sequence[int],
        sr_meta: Mapping[str, Any],
        files: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        """Record set ``t`` whose raw and SR chunks another process wrote (and fsynced)
        with :func:`write_set_chunks`: its frame rows, CRCs and SR row."""
        ap = self.n_angles * self.n_phases
        if len(crcs) != ap or (frame_meta and len(frame_meta) != ap):
            raise ValueError(f"set {t}: {len(crcs)} CRCs / {len(frame_meta)} rows for {ap} frames")
        with self._lock:
            self._check_open()
            rows = self._frame_rows(int(t), frame_meta, None, crcs)
            self._frames.add_rows(self._frames.convert(rows))
            self.frames_written += ap
            self._n_sets = max(self._n_sets, int(t) + 1)
            self._written.update(Path(f) for f in files)
            self._sr_row(int(t), sr_meta, "reconstructed", None, stored=True)

    def _start_writing(
        self, flush_interval_s: float | None, fsync: bool, interval_s: float | None
    ) -> None:
        """The writer's runtime state, for a new store and a resumed one alike."""
        self._lock = threading.RLock()
        self._closed = False
        self._failed: str | None = None  # the first write that failed (the store is done)
        self._commit_failed = False  # a table commit failed: the buffered rows are not reliable
        self._flush_interval = flush_interval_s
        self._fsync = bool(fsync)
        self._interval_s = interval_s
        self._written: set[Path] = set()
        self._handles = {}
        self._last_flush = time.monotonic()
        self._warned_keys: set[str] = set()
        self._job: Future[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="srlive-store-flush")

    def _build(
        self,
        frame_shape: tuple[int, int],
        a: int,
        p: int,
        frame_cols: dict[str, tuple[str, float | int]],
        *,
        pixel_nm: float,
        sr_shape: tuple[int, int] | None,
        sr_pixel_nm: float | None,
        laser_lines: Sequence[int],
        profile: dict[str, Any],
        run: dict[str, Any],
        sr_method: str | None,
        extra_sr_columns: Sequence[str],
        interval_s: float | None,
        compressor: str | None,
        compressor_level: int | None,
        flush_interval_s: float | None,
        fsync: bool,
        camera: NoiseRecord | None,
        sr_error: bool = False,
    ) -> None:
        """Create the groups, arrays and tables of a new store in the claimed directory."""
        h, w = frame_shape
        self._start_writing(flush_interval_s, fsync, interval_s)
        self.frame_shape = (h, w)
        self.n_angles, self.n_phases = a, p
        self.pixel_nm = float(pixel_nm)
        self.sr_pixel_nm = None if sr_pixel_nm is None else float(sr_pixel_nm)
        self.sr_method = sr_method
        self.frames_written = 0
        self.sr_written = 0
        self.sr_skipped = 0
        self._frames_flushed = 0
        self._sr_flushed = 0
        self._n_sets = 0  # 1 + largest raw set index written
        self._n_sr_t = 0  # 1 + largest SR set index written

        self._state = {
            "layout": LAYOUT_VERSION,
            "complete": False,
            "frames_flushed": 0,
            "sets_flushed": 0,
            "sr_flushed": 0,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "software": software(),
            "n_angles": a,
            "n_phases": p,
            "frame_shape": [h, w],
            "pixel_nm": self.pixel_nm,
            "sr_shape": None if sr_shape is None else [int(v) for v in sr_shape],
            "sr_pixel_nm": self.sr_pixel_nm,
            "sr_method": sr_method,
            "sr_error": bool(sr_error and sr_shape is not None),
            "laser_lines": [int(v) for v in laser_lines],
            "profile": jsonable(profile),
            "run": jsonable(run),
        }
        if camera is not None:
            self._state[CAMERA_KEY] = camera.to_attrs()
        root_attrs: dict[str, JSON] = {"ome": collection_ome(), "srlive": dict(self._state)}
        # the claimed directory is empty but for its lock file, which mode "w" would delete
        self._root = zarr.open_group(
            LocalStore(self.path), mode="a", zarr_format=3, attributes=root_attrs
        )

        self._create_images(sr_shape, interval_s, compressors(compressor, compressor_level))
        tables = self._root.create_group("tables")
        self._frames = Table(
            tables.create_group("frames"),
            frame_cols,
            description="one row per stored raw frame",
        )
        sr_cols = dict(SR_COLUMN_DEFAULTS)
        for name in extra_sr_columns:
            sr_cols[name] = ("float64", math.nan)
        self._sr_table = Table(
            tables.create_group("sr"),
            sr_cols,
            categories={"method": [sr_method] if sr_method else [], "status": list(SR_STATUSES)},
            description="one row per raw set given to the reconstruction (status says which)",
        )
        self._frame_cols = list(self._frames.columns)
        self._sr_cols = list(self._sr_table.columns)
        images = ["raw"] + (["sr"] if self._sr is not None else [])
        images += ["sr_error"] if self._sr_error is not None else []
        self._root.create_group(OME_GROUP, attributes={"ome": series_ome(images)})
        parents = register_in_parents(self.path, images)
        if self._fsync:
            nodes = [*self._all_node_dirs(), self.path / OME_GROUP]
            self._sync_files({node / "zarr.json" for node in nodes} | set(parents))

    def _create_images(
        self, sr_shape: tuple[int, int] | None, interval_s: float | None, comp: Any
    ) -> None:
        """The ``raw`` image (and ``sr`` when an SR shape is given): NGFF 0.5 multiscales."""
        (h, w), a, p = self.frame_shape, self.n_angles, self.n_phases
        t_scale = float(interval_s) if interval_s else 1.0
        raw_g = self._root.create_group(
            "raw",
            attributes={
                "ome": image_ome("raw", raw_axes(), [t_scale, 1.0, self.pixel_nm, self.pixel_nm]),
                "srlive": {"n_angles": a, "n_phases": p, "ap_index": "a * n_phases + p"},
            },
        )
        with image_pipeline():
            self._raw = raw_g.create_array(
                "0",
                shape=(0, a * p, h, w),
                dtype="uint16",
                chunks=(1, 1, h, w),
                shards=(1, a * p, h, w),
                compressors=comp,
                fill_value=0,
                dimension_names=[ax.name for ax in raw_axes()],
                config={"write_empty_chunks": True},
            )
        self._sr = None
        self._sr_error = None
        if sr_shape is not None and self.sr_pixel_nm is not None:
            self._sr = self._sr_image("sr", sr_shape, t_scale, comp, {})
            if self._state["sr_error"]:
                meaning = {
                    "of": "sr",
                    "meaning": "the error the reconstruction expects at each sr pixel "
                    "(a learned model's predicted absolute error), in sr's units",
                }
                self._sr_error = self._sr_image("sr_error", sr_shape, t_scale, comp, meaning)

    def _sr_image(
        self, name: str, shape: tuple[int, int], t_scale: float, comp: Any, extra: dict[str, str]
    ) -> zarr.Array:
        """One image on the SR grid (``sr``, ``sr_error``): (t, y, x) float32, NaN unwritten."""
        h2, w2 = (int(v) for v in shape)
        spx = float(self.sr_pixel_nm or 0.0)
        method = self.sr_method
        group = self._root.create_group(
            name,
            attributes={
                "ome": image_ome(
                    f"{name} ({method})" if method else name, sr_axes(), [t_scale, spx, spx]
                ),
                "srlive": {"method": method, "pixel_nm": spx, "index": "raw set t", **extra},
            },
        )
        with image_pipeline():
            return group.create_array(
                "0",
                shape=(0, h2, w2),
                dtype="float32",
                chunks=(1, h2, w2),
                compressors=comp,
                fill_value=float("nan"),
                dimension_names=[ax.name for ax in sr_axes()],
                config={"write_empty_chunks": True},
            )
