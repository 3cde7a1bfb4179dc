"""Streaming OME-Zarr (NGFF 0.5, Zarr v3) acquisition store.

Layout of one acquisition (``<name>.zarr``)::

    zarr.json             root group: attrs "ome" {"version": "0.5"} and "srlive" (run state)
    raw/                  NGFF 0.5 image, axes t, ap, y, x (see below)
      0/                  uint16 (T, A*P, H, W); chunk = 1 frame, shard = 1 set
    sr/                   NGFF 0.5 image, axes t, y, x (only when an SR shape is given)
      0/                  float32 (T, H2, W2); sr/0[t] is the SR image of raw set t (NaN if none)
    tables/frames/        one 1-D array per column, one row per stored raw frame
    tables/sr/            one 1-D array per column, one row per raw set given to the
                          reconstruction: ``status`` says "reconstructed" (image in sr/0[t])
                          or "skipped" (the live pipeline fell behind; sr/0[t] stays NaN)

NGFF 0.5 allows at most one axis besides time and space ("MAY contain one additional entry
of type channel or a null / custom type"), so the SIM angle and phase share one custom axis
``ap`` (type ``"angle_phase"``) with index ``a * n_phases + p``. :meth:`StoreReader.read_set`
returns the (A, P, H, W) view.

Crash safety: zarr's local store writes every file atomically (temporary file + rename).
:meth:`AcquisitionStore.flush` writes the buffered table rows, optionally fsyncs every file
written since the last flush, and only then records ``frames_flushed`` in the root
attributes, so after a crash (even SIGKILL) every frame below ``frames_flushed`` is intact.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, ZstdCodec
from zarr.storage import LocalStore

from srlive.storage.guard import (
    OutputLock,
    StoreBusyError,
    claim_output,
    holds_lock,
    only_lock_file,
)

__all__ = [
    "FRAME_COLUMN_DEFAULTS",
    "AcquisitionStore",
    "StoreDamagedError",
    "StoreReader",
    "StoreWriteError",
    "open_store",
    "write_set_chunks",
]

NGFF_VERSION = "0.5"
LAYOUT_VERSION = 1
AP_AXIS = "ap"
TABLE_CHUNK = 16384

# (dtype, fill value for rows whose metadata lacks the key)
FRAME_COLUMN_DEFAULTS: dict[str, tuple[str, float | int]] = {
    "frame": ("int64", -1),
    "t": ("int32", -1),
    "a": ("int16", -1),
    "p": ("int16", -1),
    "time_s": ("float64", math.nan),
    "exposure_ms": ("float32", math.nan),
    "slm_pattern": ("int16", -1),
    "z_um": ("float64", math.nan),
    "x_um": ("float64", math.nan),
    "y_um": ("float64", math.nan),
    "event": ("int64", -1),
    "crc32": ("int64", -1),  # zlib.crc32 of the frame's bytes as stored (-1: not recorded)
}
SR_COLUMN_DEFAULTS: dict[str, tuple[str, float | int]] = {
    "t": ("int32", -1),
    "time_s": ("float64", math.nan),
    "method": ("int16", -1),  # categorical: codes into attrs["categories"]["method"]
    "status": ("int16", -1),  # categorical: "reconstructed" | "skipped" (absent in layout 1.0)
}
SR_STATUSES = ("reconstructed", "skipped")
DEFAULT_SR_EXTRAS: tuple[str, ...] = ("recon_ms", "confidence")


def _software() -> str:
    try:
        return f"srlive {version('srlive')}"
    except PackageNotFoundError:  # pragma: no cover
        return "srlive (uninstalled)"


def _jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (numpy scalars, paths, tuples, sets, models)."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((_jsonable(v) for v in obj), key=str)
    if hasattr(obj, "model_dump"):  # pydantic models
        return _jsonable(obj.model_dump(mode="json"))
    return str(obj)


def _compressors(name: str | None, level: int | None) -> Any:
    if name is None or name == "none":
        return None
    if name == "zstd":
        return ZstdCodec(level=1 if level is None else level)
    if name == "blosc":
        return BloscCodec(
            cname="lz4", clevel=5 if level is None else level, shuffle=BloscShuffle.bitshuffle
        )
    raise ValueError(f"unknown compressor {name!r}; use None, 'zstd' or 'blosc'")


def _image_attrs(
    name: str, axes: list[dict[str, str]], scale: list[float], extra: dict[str, Any]
) -> dict[str, Any]:
    """Attributes of an NGFF 0.5 single-level multiscale image group."""
    multiscale = {
        "name": name,
        "axes": axes,
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        ],
    }
    return {"ome": {"version": NGFF_VERSION, "multiscales": [multiscale]}, "srlive": extra}


def _raw_axes() -> list[dict[str, str]]:
    return [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": AP_AXIS, "type": "angle_phase"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]


def _sr_axes() -> list[dict[str, str]]:
    return [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]


def frame_crc(frame: np.ndarray) -> int:
    """CRC-32 of one frame's bytes in C order (the ``crc32`` frame column)."""
    return zlib.crc32(np.ascontiguousarray(frame))


class StoreWriteError(OSError):
    """Writing a store failed (disk full, permissions, ...); it accepts no more data."""


def _describe(exc: BaseException) -> str:
    """One line naming the cause of a failed write."""
    if isinstance(exc, StoreWriteError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"write failed: {exc.strerror}{where}"
    return f"write failed: {type(exc).__name__}: {exc}"


def _fsync_path(path: Path, directory: bool = False) -> None:
    if directory and os.name == "nt":  # directories cannot be fsynced on Windows
        return
    flags = os.O_RDONLY if os.name != "nt" else os.O_RDWR
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:  # e.g. a chunk zarr skipped; nothing to make durable
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Table:
    """A zarr group holding one resizable 1-D array per column, with buffered appends."""

    def __init__(
        self,
        group: zarr.Group,
        columns: Mapping[str, tuple[str, float | int]],
        categories: Mapping[str, list[str]] | None = None,
        description: str = "",
    ) -> None:
        self.group = group
        self.columns = dict(columns)
        self.categories: dict[str, list[str]] = {k: list(v) for k, v in (categories or {}).items()}
        self.arrays: dict[str, zarr.Array] = {}
        for name, (dtype, fill) in self.columns.items():
            self.arrays[name] = group.create_array(
                name,
                shape=(0,),
                dtype=dtype,
                chunks=(TABLE_CHUNK,),
                compressors=None,
                fill_value=fill,
                dimension_names=["row"],
            )
        self._buffers: dict[str, list[Any]] = {name: [] for name in self.columns}
        self.length = 0
        self._categories_dirty = False
        group.update_attributes(
            {
                "columns": list(self.columns),
                "dtypes": {k: v[0] for k, v in self.columns.items()},
                "categories": self.categories,
                "description": description,
            }
        )

    @classmethod
    def reopen(cls, group: zarr.Group, length: int) -> _Table:
        """An existing table, cut back to its ``length`` durable rows (a resumed store)."""
        self = object.__new__(cls)
        self.group = group
        dtypes = dict(group.attrs["dtypes"])
        columns = list(group.attrs["columns"])
        self.arrays = {name: group[name] for name in columns}
        fills = {name: self.arrays[name].metadata.fill_value for name in columns}
        self.columns = {name: (dtypes[name], fills[name].item()) for name in columns}
        self.categories = {k: list(v) for k, v in group.attrs.get("categories", {}).items()}
        for arr in self.arrays.values():  # rows past the durable count were never counted
            if arr.shape[0] != length:
                arr.resize((length,))
        self._buffers = {name: [] for name in self.columns}
        self.length = length
        self._categories_dirty = False
        return self

    def sort_by(self, keys: Sequence[str]) -> None:
        """Rewrite the committed rows in the order of ``keys`` (stable; first key last-wins)."""
        if self.length < 2:
            return
        cols = {name: arr[:] for name, arr in self.arrays.items()}
        order = np.lexsort([cols[k] for k in reversed(keys)])
        for name, arr in self.arrays.items():
            arr[:] = cols[name][order]

    def code(self, column: str, value: str) -> int:
        """Integer code of a categorical value (new categories are added)."""
        cats = self.categories.setdefault(column, [])
        if value not in cats:
            cats.append(value)
            self._categories_dirty = True
        return cats.index(value)

    def convert(self, rows: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Column arrays from ``rows`` (column -> values; None means the default).

        Raises ValueError if a value does not fit its column.
        """
        arrays: dict[str, np.ndarray] = {}
        for name, (dtype, default) in self.columns.items():
            values = [default if v is None else v for v in rows[name]]
            try:
                arrays[name] = np.asarray(values, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"column {name!r} ({dtype}): bad value in {values!r}") from exc
        return arrays

    def add_rows(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Buffer converted rows until the next commit."""
        for name, buf in self._buffers.items():
            buf.append(arrays[name])

    def take(self) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]] | None]:
        """Hand over the buffered rows (and changed categories) and start new buffers."""
        rows = self._buffers
        self._buffers = {name: [] for name in self.columns}
        cats = None
        if self._categories_dirty:
            cats = {k: list(v) for k, v in self.categories.items()}
            self._categories_dirty = False
        return rows, cats

    def commit(
        self,
        rows: Mapping[str, list[np.ndarray]],
        categories: dict[str, list[str]] | None,
        written: set[Path],
        root: Path,
    ) -> None:
        """Append ``rows`` to the arrays (zarr's append); record touched files in ``written``."""
        if categories is not None:
            self.group.update_attributes({"categories": categories})
            written.add(root / self.group.path / "zarr.json")
        n = sum(len(r) for r in next(iter(rows.values()))) if rows else 0
        if n == 0:
            return
        start = self.length
        for name, arr in self.arrays.items():
            arr.append(np.concatenate(rows[name]))
            base = root / arr.path
            written.add(base / "zarr.json")
            for c in range(start // TABLE_CHUNK, (start + n - 1) // TABLE_CHUNK + 1):
                written.add(base / arr.metadata.encode_chunk_key((c,)))
        self.length = start + n


def _frame_columns(
    laser_lines: Sequence[int], extras: Sequence[str]
) -> dict[str, tuple[str, float | int]]:
    """Frame-table columns in their documented order (power columns after exposure_ms)."""
    std = FRAME_COLUMN_DEFAULTS
    cols = {k: std[k] for k in ("frame", "t", "a", "p", "time_s", "exposure_ms")}
    for line in laser_lines:
        cols[f"power_mw_{int(line)}"] = ("float32", math.nan)
    cols.update({k: std[k] for k in ("slm_pattern", "z_um", "x_um", "y_um", "event", "crc32")})
    for name in extras:
        if name not in cols:  # a standard column named again (a copied table) is that column
            cols[name] = ("float64", math.nan)
    return cols


@dataclass
class _FlushJob:
    frames: tuple[dict[str, list[np.ndarray]], dict[str, list[str]] | None]
    sr: tuple[dict[str, list[np.ndarray]], dict[str, list[str]] | None]
    files: set[Path]
    n_sets: int


class AcquisitionStore:
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
        sr_shape: tuple[int, int] | None,
        sr_pixel_nm: float | None,
        laser_lines: Sequence[int],
        profile: dict[str, Any],
        run: dict[str, Any],
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
    ) -> AcquisitionStore:
        """Create a new store at ``path`` (``FileExistsError`` unless ``overwrite``).

        The directory is claimed through :func:`srlive.storage.guard.claim_output`:
        ``overwrite`` replaces only an srlive store no other process is writing, and never
        one of ``inputs`` (paths the caller reads from). The lock is held until :meth:`close`.

        ``interval_s`` is the nominal set interval (time scale); when None it is estimated
        from the frames' ``time_s`` at close. ``flush_interval_s`` auto-flushes on writes
        (None: only explicit :meth:`flush`). ``fsync`` makes flushes survive power loss.

        ``n_sets`` sizes the time axis for a known number of sets up front, for outputs whose
        sets are written out of order by other processes (:func:`write_set_chunks`, then
        :meth:`record_set`); sets not yet written read as missing until they are, and the
        store says ``complete`` only when closed complete. Their tables are sorted by set at
        close, so they do not depend on the order sets finished in.
        """
        self = object.__new__(cls)
        self.path = Path(path)
        h, w = (int(v) for v in frame_shape)
        a, p = int(n_angles), int(n_phases)
        if min(h, w, a, p) < 1:
            raise ValueError("frame_shape, n_angles and n_phases must be positive")
        if sr_shape is not None and sr_pixel_nm is None:
            raise ValueError("sr_pixel_nm is required when sr_shape is given")
        frame_cols = _frame_columns(laser_lines, extra_frame_columns)
        # the directory: claimed here, or by the command that holds it (the run's top store)
        if holds_lock(self.path):
            if not only_lock_file(self.path):
                raise StoreBusyError(f"{self.path} is being written by this process")
            self._claim: OutputLock | None = None
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
                profile=profile,
                run=run,
                sr_method=sr_method,
                extra_sr_columns=extra_sr_columns,
                interval_s=interval_s,
                compressor=compressor,
                compressor_level=compressor_level,
                flush_interval_s=flush_interval_s,
                fsync=fsync,
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
        state = dict(root.attrs["srlive"])
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
        self._raw = root["raw/0"]
        self._sr = root["sr/0"] if "sr" in root else None
        self._frames = _Table.reopen(root["tables/frames"], int(state["frames_flushed"]))
        self._sr_table = _Table.reopen(root["tables/sr"], int(state["sr_flushed"]))
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
        for arr in (self._raw, self._sr):
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

        self._state: dict[str, Any] = {
            "layout": LAYOUT_VERSION,
            "complete": False,
            "frames_flushed": 0,
            "sets_flushed": 0,
            "sr_flushed": 0,
            "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "software": _software(),
            "n_angles": a,
            "n_phases": p,
            "frame_shape": [h, w],
            "pixel_nm": self.pixel_nm,
            "sr_shape": None if sr_shape is None else [int(v) for v in sr_shape],
            "sr_pixel_nm": self.sr_pixel_nm,
            "sr_method": sr_method,
            "laser_lines": [int(v) for v in laser_lines],
            "profile": _jsonable(profile),
            "run": _jsonable(run),
        }
        root_attrs = {"ome": {"version": NGFF_VERSION}, "srlive": dict(self._state)}
        # the claimed directory is empty but for its lock file, which mode "w" would delete
        self._root = zarr.open_group(
            LocalStore(self.path), mode="a", zarr_format=3, attributes=root_attrs
        )

        t_scale = float(interval_s) if interval_s else 1.0
        comp = _compressors(compressor, compressor_level)
        raw_g = self._root.create_group(
            "raw",
            attributes=_image_attrs(
                "raw",
                _raw_axes(),
                [t_scale, 1.0, self.pixel_nm, self.pixel_nm],
                {"n_angles": a, "n_phases": p, "ap_index": "a * n_phases + p"},
            ),
        )
        self._raw = raw_g.create_array(
            "0",
            shape=(0, a * p, h, w),
            dtype="uint16",
            chunks=(1, 1, h, w),
            shards=(1, a * p, h, w),
            compressors=comp,
            fill_value=0,
            dimension_names=[ax["name"] for ax in _raw_axes()],
            config={"write_empty_chunks": True},
        )
        self._sr: zarr.Array | None = None
        if sr_shape is not None and self.sr_pixel_nm is not None:
            h2, w2 = (int(v) for v in sr_shape)
            spx = self.sr_pixel_nm
            sr_g = self._root.create_group(
                "sr",
                attributes=_image_attrs(
                    f"sr ({sr_method})" if sr_method else "sr",
                    _sr_axes(),
                    [t_scale, spx, spx],
                    {"method": sr_method, "pixel_nm": spx, "index": "raw set t"},
                ),
            )
            self._sr = sr_g.create_array(
                "0",
                shape=(0, h2, w2),
                dtype="float32",
                chunks=(1, h2, w2),
                compressors=comp,
                fill_value=float("nan"),
                dimension_names=[ax["name"] for ax in _sr_axes()],
                config={"write_empty_chunks": True},
            )

        tables = self._root.create_group("tables")
        self._frames = _Table(
            tables.create_group("frames"),
            frame_cols,
            description="one row per stored raw frame",
        )
        sr_cols = dict(SR_COLUMN_DEFAULTS)
        for name in extra_sr_columns:
            sr_cols[name] = ("float64", math.nan)
        self._sr_table = _Table(
            tables.create_group("sr"),
            sr_cols,
            categories={"method": [sr_method] if sr_method else [], "status": list(SR_STATUSES)},
            description="one row per raw set given to the reconstruction (status says which)",
        )
        self._frame_cols = list(self._frames.columns)
        self._sr_cols = list(self._sr_table.columns)
        if self._fsync:
            self._sync_files({node / "zarr.json" for node in self._all_node_dirs()})

    # -- writing ---------------------------------------------------------------------------
    @property
    def frames_flushed(self) -> int:
        return self._frames_flushed

    @property
    def sr_flushed(self) -> int:
        return self._sr_flushed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> str | None:
        """Why writing stopped (the first failed write), or None."""
        return self._failed

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        if self._failed is not None:
            raise StoreWriteError(
                f"{self.path}: writing stopped after a failed write: {self._failed}"
            )

    def _fail(self, exc: BaseException) -> StoreWriteError:
        """Record the first failed write; the store accepts no more data after it."""
        if self._failed is None:
            self._failed = _describe(exc)
        return StoreWriteError(f"{self.path}: {self._failed}")

    def _ensure_length(self, arr: zarr.Array, t: int) -> None:
        """Grow the time axis to exactly ``t + 1`` (no pre-allocated, blank time points)."""
        if t >= arr.shape[0]:
            arr.resize((t + 1, *arr.shape[1:]))
            self._written.add(self.path / arr.path / "zarr.json")

    def _chunk_file(self, arr: zarr.Array, coords: tuple[int, ...]) -> Path:
        return self.path / arr.path / arr.metadata.encode_chunk_key(coords)

    def _warn_unknown(self, keys: Sequence[str], known: Sequence[str]) -> None:
        for k in keys:
            if k not in known and k not in self._warned_keys:
                self._warned_keys.add(k)
                warnings.warn(f"metadata key {k!r} has no column; ignored", stacklevel=3)

    def write_set(
        self, t: int, frames: np.ndarray, frame_meta: Sequence[Mapping[str, Any]]
    ) -> None:
        """Store one complete set ``frames`` (A, P, H, W) as raw time point ``t``.

        ``frame_meta`` holds one dict per frame in (a, p) order (or is empty); missing
        keys get the column default, ``t``/``a``/``p`` come from the position.
        """
        a, p = self.n_angles, self.n_phases
        ap = a * p
        h, w = self.frame_shape
        arr = np.asarray(frames)
        if arr.shape not in ((a, p, h, w), (ap, h, w)):
            raise ValueError(f"set shape {arr.shape} != {(a, p, h, w)}")
        if arr.dtype != np.uint16:
            arr = arr.astype(np.uint16)
        if frame_meta and len(frame_meta) != ap:
            raise ValueError(f"{len(frame_meta)} frame metadata dicts for {ap} frames")
        t = int(t)
        if t < 0:
            raise ValueError("t must be >= 0")
        with self._lock:
            self._check_open()
            rows = self._frames.convert(self._frame_rows(t, frame_meta, arr.reshape(ap, h, w)))
            try:
                self._ensure_length(self._raw, t)
                self._raw[t] = arr.reshape(ap, h, w)  # one shard, one file
            except Exception as exc:
                raise self._fail(exc) from exc
            self._written.add(self._chunk_file(self._raw, (t, 0, 0, 0)))
            self._frames.add_rows(rows)
            self.frames_written += ap
            self._n_sets = max(self._n_sets, t + 1)
            self._maybe_autoflush()

    def _frame_rows(
        self,
        t: int,
        metas: Sequence[Mapping[str, Any]],
        frames: np.ndarray | None,
        crcs: Sequence[int] | None = None,
    ) -> dict[str, list[Any]]:
        ap, p = self.n_angles * self.n_phases, self.n_phases
        first = self.frames_written
        rows: dict[str, list[Any]] = {}
        if metas:
            self._warn_unknown(list(metas[0]), self._frame_cols)
        for name in self._frame_cols:
            if name == "t":
                rows[name] = [t] * ap
            elif name == "a":
                rows[name] = [i // p for i in range(ap)]
            elif name == "p":
                rows[name] = [i % p for i in range(ap)]
            elif name == "crc32":
                rows[name] = list(crcs) if crcs is not None else [frame_crc(f) for f in frames]
            elif name == "frame":
                rows[name] = [m.get("frame", first + i) for i, m in enumerate(metas)] or list(
                    range(first, first + ap)
                )
            else:
                rows[name] = [m.get(name) for m in metas] or [None] * ap
        return rows

    def write_sr(self, t: int, image: np.ndarray, meta: Mapping[str, Any]) -> None:
        """Store the SR image of raw set ``t`` at ``sr/0[t]`` and one ``tables/sr`` row."""
        if self._sr is None:
            raise RuntimeError("this store was created without sr_shape")
        img = np.asarray(image, dtype=np.float32)
        if img.shape != self._sr.shape[1:]:
            raise ValueError(f"SR image shape {img.shape} != {self._sr.shape[1:]}")
        self._sr_row(t, meta, "reconstructed", img)

    def write_sr_skipped(self, t: int, meta: Mapping[str, Any]) -> None:
        """Record that raw set ``t`` was not reconstructed (``sr/0[t]`` stays NaN)."""
        if self._sr is None:
            raise RuntimeError("this store was created without sr_shape")
        self._sr_row(t, meta, "skipped", None)

    def _sr_row(
        self,
        t: int,
        meta: Mapping[str, Any],
        status: str,
        img: np.ndarray | None,
        stored: bool = False,
    ) -> None:
        t = int(t)
        if t < 0:
            raise ValueError("t must be >= 0")
        with self._lock:
            self._check_open()
            self._warn_unknown(list(meta), self._sr_cols)
            row: dict[str, list[Any]] = {}
            for name in self._sr_cols:
                if name == "t":
                    row[name] = [t]
                elif name == "method":
                    method = meta.get("method", self.sr_method)
                    code = -1 if method is None else self._sr_table.code("method", str(method))
                    row[name] = [code]
                elif name == "status":
                    row[name] = [self._sr_table.code("status", status)]
                else:
                    row[name] = [meta.get(name)]
            rows = self._sr_table.convert(row)
            try:
                self._ensure_length(self._sr, t)
                if img is not None:
                    self._sr[t] = img
            except Exception as exc:
                raise self._fail(exc) from exc
            if img is not None:
                self._written.add(self._chunk_file(self._sr, (t, 0, 0)))
            if img is not None or stored:
                self.sr_written += 1
            else:
                self.sr_skipped += 1
            self._sr_table.add_rows(rows)
            self._n_sr_t = max(self._n_sr_t, t + 1)
            self._maybe_autoflush()

    def _maybe_autoflush(self) -> None:
        if self._flush_interval is not None and (
            time.monotonic() - self._last_flush >= self._flush_interval
        ):
            self._flush_locked(wait=False)

    # -- durability ------------------------------------------------------------------------
    def _all_node_dirs(self) -> list[Path]:
        nodes = [self.path, self.path / "raw", self.path / self._raw.path]
        nodes += [self.path / "tables", self.path / "tables/frames", self.path / "tables/sr"]
        nodes += [self.path / a.path for a in self._frames.arrays.values()]
        nodes += [self.path / a.path for a in self._sr_table.arrays.values()]
        if self._sr is not None:
            nodes += [self.path / "sr", self.path / self._sr.path]
        return nodes

    def _sync_files(self, files: set[Path]) -> None:
        dirs: set[Path] = set()
        for f in files:
            _fsync_path(f)
            dirs.add(f.parent)
        for d in dirs:
            _fsync_path(d, directory=True)

    def _write_state(self, **updates: Any) -> None:
        self._state.update(updates)
        self._root.update_attributes({"srlive": dict(self._state)})
        if self._fsync:
            _fsync_path(self.path / "zarr.json")
            _fsync_path(self.path, directory=True)

    def _commit(self, job: _FlushJob) -> None:
        """Tables, then fsync, then the counts in the root attributes (in this order)."""
        files = set(job.files)
        self._frames.commit(*job.frames, files, self.path)
        self._sr_table.commit(*job.sr, files, self.path)
        if self._fsync:
            self._sync_files(files)
        self._write_state(
            frames_flushed=self._frames.length,
            sets_flushed=job.n_sets,
            sr_flushed=self._sr_table.length,
        )
        self._frames_flushed = self._frames.length
        self._sr_flushed = self._sr_table.length

    def _flush_locked(self, wait: bool) -> None:
        """Commit what was written so far, in the background unless ``wait``."""
        pending = self._job
        if pending is not None:
            if not pending.done() and not wait:
                return  # the previous commit is still running: try again on a later write
            self._job = None
            try:
                pending.result()  # re-raise a failed background commit
            except Exception as exc:
                self._commit_failed = True
                raise self._fail(exc) from exc
        job = _FlushJob(
            frames=self._frames.take(),
            sr=self._sr_table.take(),
            files=self._written,
            n_sets=self._n_sets,
        )
        self._written = set()
        self._last_flush = time.monotonic()
        if wait:
            try:
                self._commit(job)
            except Exception as exc:
                self._commit_failed = True
                raise self._fail(exc) from exc
        else:
            self._job = self._executor.submit(self._commit, job)

    def flush(self) -> None:
        """Write buffered table rows, make all data durable, then record the counts."""
        with self._lock:
            self._check_open()
            self._flush_locked(wait=True)

    def close(self, complete: bool = True) -> None:
        """Flush, fix the time scale, and mark the store ``complete`` (if nothing failed).

        A store whose writing failed is marked incomplete whatever ``complete`` says; its
        root attributes then still count only what was made durable before the failure.
        Raises StoreWriteError if the final flush fails (the writer's lock is released).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._finish(complete)
            finally:
                self._executor.shutdown(wait=True)
                if self._claim is not None:
                    self._claim.release()

    def _finish(self, complete: bool) -> None:
        if self._failed is not None and not self._commit_failed:
            try:  # the sets written before the failed write: make their rows durable too
                self._flush_locked(wait=True)
            except StoreWriteError:
                pass  # the root attributes still count what was durable before
        try:
            if self._failed is None:
                self._flush_locked(wait=True)
                if complete and getattr(self, "_sorted_tables", False):
                    self._sort_tables()
            if self._interval_s is None:
                self._set_time_scale(self._estimate_interval())
            if self._fsync:
                self._sync_files(self._written)
            self._written.clear()
            ok = complete and self._failed is None
            self._write_state(
                complete=ok,
                closed=datetime.now(UTC).isoformat(),
                **({"error": self._failed} if self._failed else {}),
            )
        except StoreWriteError:
            self._mark_failed()
            raise
        except Exception as exc:
            err = self._fail(exc)
            self._mark_failed()
            raise err from exc
        if self._failed is not None:
            raise StoreWriteError(f"{self.path}: {self._failed}")

    def _sort_tables(self) -> None:
        """Rows by set (then frame position): the same tables whatever order sets ended in."""
        self._frames.sort_by(("t", "a", "p"))
        self._sr_table.sort_by(("t",))
        for table in (self._frames, self._sr_table):
            for arr in table.arrays.values():
                base = self.path / arr.path
                self._written.add(base / "zarr.json")
                for c in range(-(-table.length // TABLE_CHUNK)):
                    self._written.add(base / arr.metadata.encode_chunk_key((c,)))

    def _mark_failed(self) -> None:
        """Best effort: record the failure in the root attributes (still ``complete: false``)."""
        try:
            self._write_state(complete=False, error=self._failed)
        except Exception:  # the disk is full: the attributes already say incomplete
            pass

    def _estimate_interval(self) -> float | None:
        """Median time between the first frames of consecutive sets, from ``time_s``."""
        if self._frames.length < 2 * self.n_angles * self.n_phases:
            return None
        col = {k: self._frames.arrays[k][:] for k in ("t", "a", "p", "time_s")}
        first = (col["a"] == 0) & (col["p"] == 0)
        t, ts = col["t"][first], col["time_s"][first]
        order = np.argsort(t, kind="stable")
        d = np.diff(ts[order]) / np.maximum(np.diff(t[order]), 1)
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if d.size else None

    def _set_time_scale(self, interval: float | None) -> None:
        if not interval:
            return
        for name in ("raw", "sr"):
            if name not in self._root:
                continue
            g = self._root[name]
            ome = dict(g.attrs["ome"])
            ms = ome["multiscales"][0]
            ms["datasets"][0]["coordinateTransformations"][0]["scale"][0] = interval
            g.update_attributes({"ome": ome})
            self._written.add(self.path / name / "zarr.json")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close(complete=True)
            return
        try:
            self.close(complete=False)
        except Exception as close_err:  # keep the original exception
            warnings.warn(f"closing {self.path} after an error failed: {close_err}", stacklevel=2)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"AcquisitionStore({str(self.path)!r}, frames={self.frames_written}, {state})"


def write_set_chunks(
    path: str | os.PathLike[str], t: int, frames: np.ndarray, sr: np.ndarray | None
) -> tuple[list[int], list[str]]:
    """Write set ``t``'s raw frames (and SR image) into a pre-sized store's arrays.

    For workers of a distributed job: each set is its own shard/chunk, so no two writers
    ever touch the same file. The files are fsynced here; the coordinating process then
    records the set (:meth:`AcquisitionStore.record_set`) with the CRCs returned.
    """
    root = Path(path)
    raw = zarr.open_array(LocalStore(root / "raw" / "0"), mode="r+", zarr_format=3)
    ap, h, w = raw.shape[1:]
    arr = np.asarray(frames).reshape(ap, h, w)
    if arr.dtype != np.uint16:
        arr = arr.astype(np.uint16)
    if not 0 <= t < raw.shape[0]:
        raise ValueError(f"set {t} is outside {root}'s {raw.shape[0]} sets")
    raw[t] = arr
    files = [root / "raw" / "0" / raw.metadata.encode_chunk_key((t, 0, 0, 0))]
    if sr is not None:
        sr_arr = zarr.open_array(LocalStore(root / "sr" / "0"), mode="r+", zarr_format=3)
        sr_arr[t] = np.asarray(sr, np.float32)
        files.append(root / "sr" / "0" / sr_arr.metadata.encode_chunk_key((t, 0, 0)))
    for f in files:
        _fsync_path(f)
    return [frame_crc(f) for f in arr], [str(f) for f in files]


class StoreDamagedError(ValueError):
    """A store (or the part of it a reader needs) is missing, truncated or corrupted."""


@dataclass
class StoreReader:
    """Read side of an acquisition store (see :func:`open_store`).

    Every read is checked: a set index outside the durable sets, a chunk file that is
    missing, one zarr cannot decode, or a frame whose CRC-32 differs from the one recorded
    when it was written raises :class:`StoreDamagedError` naming the set and the file, so no
    caller ever computes on fill values as if they were data.
    """

    path: Path
    root: zarr.Group
    attrs: dict[str, Any]
    raw: zarr.Array
    sr: zarr.Array | None
    frames: dict[str, np.ndarray]
    sr_table: dict[str, np.ndarray]
    _rows_by_t: dict[int, np.ndarray] | None = None

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete", False))

    @property
    def n_angles(self) -> int:
        return int(self.attrs["n_angles"])

    @property
    def n_phases(self) -> int:
        return int(self.attrs["n_phases"])

    @property
    def n_frames(self) -> int:
        """Frames that are durable (``frames_flushed``)."""
        return int(self.attrs["frames_flushed"])

    @property
    def n_sets(self) -> int:
        """Number of durable raw time points (1 + largest flushed set index)."""
        return int(self.attrs.get("sets_flushed", self.n_frames // (self.n_angles * self.n_phases)))

    @property
    def pixel_nm(self) -> float:
        return float(self.attrs["pixel_nm"])

    @property
    def sr_pixel_nm(self) -> float | None:
        v = self.attrs.get("sr_pixel_nm")
        return None if v is None else float(v)

    def _check_t(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.n_sets:
            raise IndexError(f"{self.path}: no raw set {t} (the store has {self.n_sets} sets)")
        return t

    def _chunk(self, arr: zarr.Array, coords: tuple[int, ...]) -> Path:
        return self.path / arr.path / arr.metadata.encode_chunk_key(coords)

    def _read(self, arr: zarr.Array, index: Any, chunks: Sequence[tuple[int, ...]]) -> np.ndarray:
        """``arr[index]``, refusing missing chunk files and undecodable ones by name."""
        for coords in chunks:
            chunk = self._chunk(arr, coords)
            if not chunk.is_file():
                raise StoreDamagedError(
                    f"{self.path}: {arr.path}[{coords[0]}] is missing "
                    f"(chunk file {chunk.relative_to(self.path)} not found)"
                )
        try:
            return np.asarray(arr[index])
        except Exception as exc:
            where = f"[{index}]" if isinstance(index, int) else f"[{index.start}:{index.stop}]"
            raise StoreDamagedError(
                f"{self.path}: {arr.path}{where} cannot be decoded; its chunk file is truncated "
                f"or corrupted ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
            ) from exc

    def _rows_of(self, t: int) -> np.ndarray:
        if self._rows_by_t is None:
            ts = self.frames.get("t", np.zeros(0, np.int32))
            order = np.argsort(ts, kind="stable")
            cuts = np.flatnonzero(np.diff(ts[order])) + 1
            self._rows_by_t = {int(ts[g[0]]): g for g in np.split(order, cuts) if g.size}
        return self._rows_by_t.get(int(t), np.zeros(0, np.int64))

    def verify_set(self, t: int, flat: np.ndarray) -> None:
        """Compare each frame of set ``t`` (A*P, H, W) with its recorded CRC-32."""
        p = self.n_phases
        stored = self.frames.get("crc32")
        camera = self.frames.get("camera_crc")
        for row in self._rows_of(t):
            k = int(self.frames["a"][row]) * p + int(self.frames["p"][row])
            if not 0 <= k < len(flat):
                continue
            expected: int | None = None
            if stored is not None and int(stored[row]) >= 0:
                expected = int(stored[row])
            elif camera is not None and math.isfinite(float(camera[row])):
                expected = int(camera[row])
            if expected is not None and frame_crc(flat[k]) != expected:
                raise StoreDamagedError(
                    f"{self.path}: raw set {t} frame {k} fails its CRC check (chunk file "
                    f"{self._chunk(self.raw, (t, 0, 0, 0)).relative_to(self.path)} is corrupted)"
                )

    def read_set(self, t: int) -> np.ndarray:
        """Raw set ``t`` as a (A, P, H, W) uint16 array (checked; see the class docstring)."""
        t = self._check_t(t)
        data = self._read(self.raw, t, [(t, 0, 0, 0)])
        self.verify_set(t, data)
        return data.reshape(self.n_angles, self.n_phases, *data.shape[1:])

    def read_sets(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Raw sets ``start:stop`` (default: all durable) as (T, A, P, H, W), checked."""
        stop = self.n_sets if stop is None else min(int(stop), self.n_sets)
        start = max(0, int(start))
        ts = range(start, stop)
        data = self._read(self.raw, slice(start, stop), [(t, 0, 0, 0) for t in ts])
        for i, t in enumerate(ts):
            self.verify_set(t, data[i])
        return data.reshape(data.shape[0], self.n_angles, self.n_phases, *data.shape[2:])

    def read_sr(self, t: int) -> np.ndarray:
        """SR image of raw set ``t`` (NaN where none was stored; a lost image raises)."""
        if self.sr is None:
            raise KeyError("this store has no SR images")
        t = int(t)
        if self.sr_status().get(t) == "reconstructed":
            return self._read(self.sr, t, [(t, 0, 0)])
        if not 0 <= t < self.sr.shape[0]:
            raise IndexError(f"{self.path}: no SR image {t}")
        return np.full(self.sr.shape[1:], np.nan, np.float32)

    def sr_status(self) -> dict[int, str]:
        """Per raw set t given to the reconstruction: "reconstructed" or "skipped".

        Stores written before the ``status`` column existed list every row as reconstructed.
        """
        ts = self.sr_table.get("t", np.zeros(0, np.int32))
        status = self.sr_table.get("status")
        if status is None:
            return {int(t): "reconstructed" for t in ts}
        return {int(t): str(s) or "reconstructed" for t, s in zip(ts, status, strict=True)}


def _read_table(group: zarr.Group, n: int | None, where: str) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    cats = dict(group.attrs.get("categories", {}))
    for name in group.attrs.get("columns", []):
        if name not in group:
            raise StoreDamagedError(f"{where}/{name} is missing (a column of the table)")
        try:
            data = np.asarray(group[name][:] if n is None else group[name][:n])
        except Exception as exc:
            raise StoreDamagedError(
                f"{where}/{name} cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        if n is not None and len(data) < n:
            raise StoreDamagedError(
                f"{where}/{name} has {len(data)} rows, the store recorded {n} as durable"
            )
        if name in cats:
            labels = np.asarray([*cats[name], ""], dtype=object)
            data = labels[np.where(data < 0, len(labels) - 1, data)].astype(str)
        cols[name] = data
    return cols


def _load_json(path: Path, root: Path) -> dict[str, Any]:
    """One node's ``zarr.json``; StoreDamagedError naming the file if missing or invalid."""
    rel = path.relative_to(root.parent)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StoreDamagedError(f"{rel} is missing") from None
    except OSError as exc:
        raise StoreDamagedError(f"{rel} cannot be read ({exc.strerror})") from exc
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise StoreDamagedError(f"{rel} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise StoreDamagedError(f"{rel} is not a Zarr metadata object")
    return meta


def _check_metadata(p: Path) -> None:
    """Every metadata file a reader needs exists and parses (named when it does not)."""
    root = _load_json(p / "zarr.json", p)
    if not isinstance(root.get("attributes", {}).get("srlive"), dict):
        raise StoreDamagedError(f"{p} is not an srlive acquisition store (no srlive attributes)")
    nodes = ["raw", "raw/0", "tables", "tables/frames", "tables/sr"]
    if root["attributes"]["srlive"].get("sr_shape") is not None:
        nodes += ["sr", "sr/0"]
    for node in nodes:
        meta = _load_json(p / node / "zarr.json", p)
        if node.startswith("tables/"):
            for column in meta.get("attributes", {}).get("columns", []):
                _load_json(p / node / str(column) / "zarr.json", p)


def open_store(path: str | os.PathLike[str]) -> StoreReader:
    """Open an acquisition store read-only (works on incomplete, crashed stores).

    Raises FileNotFoundError if there is nothing at ``path`` and StoreDamagedError (one line,
    naming the file) if its metadata or tables are missing or damaged.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such store")
    if not p.is_dir():
        raise StoreDamagedError(f"{p} is not an srlive store (not a directory)")
    _check_metadata(p)
    try:
        root = zarr.open_group(LocalStore(p, read_only=True), mode="r", zarr_format=3)
        attrs = dict(root.attrs["srlive"])
        tables = root["tables"]
        raw = root["raw/0"]
        sr = root["sr/0"] if "sr" in root else None
    except StoreDamagedError:
        raise
    except Exception as exc:
        raise StoreDamagedError(f"{p} cannot be opened ({type(exc).__name__}: {exc})") from exc
    return StoreReader(
        path=p,
        root=root,
        attrs=attrs,
        raw=raw,
        sr=sr,
        frames=_read_table(tables["frames"], int(attrs["frames_flushed"]), f"{p}/tables/frames"),
        sr_table=_read_table(tables["sr"], int(attrs["sr_flushed"]), f"{p}/tables/sr"),
    )
