"""Appending sets, SR images and their table rows to a store being written."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.storage.files import child_group, frame_crc, image_pipeline
from srlive.storage.tables import Table
from srlive.storage.writer_state import WriterState

__all__ = ["GROW_SETS", "Writes"]

GROW_SETS = 256  # time points a writing handle's time axis grows by, in memory


class Writes(WriterState):
    """The writing methods of :class:`srlive.storage.store.AcquisitionStore`."""

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

    def _writable(self, arr: zarr.Array, t: int) -> zarr.Array:
        """A handle on ``arr`` that takes time point ``t``.

        Past ``arr``'s time axis it is a second handle whose axis is longer in memory only
        (grown by :data:`GROW_SETS`): ``zarr.json``, what readers see, grows at a flush, to
        the time points written by then (:meth:`~srlive.storage.durable.Durable._commit`).
        So it never counts a time point whose chunk was not written (no pre-allocated,
        blank ones), and a set's write costs no metadata file."""
        if t < arr.shape[0]:
            return arr
        handle = self._handles.get(arr.path)
        if handle is None or t >= handle.shape[0]:
            longer = arr.metadata.update_shape((t + GROW_SETS, *arr.shape[1:]))
            with image_pipeline():
                async_array = zarr.AsyncArray(longer, arr.store_path, arr.async_array.config)
            handle = zarr.Array(async_array)
            self._handles[arr.path] = handle
        return handle

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
            chunk = self._chunk_file(self._raw, (t, 0, 0, 0))
            try:
                self._writable(self._raw, t)[t] = arr.reshape(ap, h, w)  # one shard, one file
            except Exception as exc:
                raise self._fail(exc, chunk) from exc
            self._written.add(chunk)
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
        """The rows of set ``t``: its ``frames`` are CRC'd unless their ``crcs`` are given."""
        ap, p = self.n_angles * self.n_phases, self.n_phases
        if crcs is None:
            if frames is None:
                raise ValueError(f"set {t}: neither its frames nor their CRCs")
            crcs = [frame_crc(f) for f in frames]
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
                rows[name] = list(crcs)
            elif name == "frame":
                rows[name] = [m.get("frame", first + i) for i, m in enumerate(metas)] or list(
                    range(first, first + ap)
                )
            else:
                rows[name] = [m.get(name) for m in metas] or [None] * ap
        return rows

    def write_sr(
        self,
        t: int,
        image: np.ndarray,
        meta: Mapping[str, Any],
        error: np.ndarray | None = None,
    ) -> None:
        """Store the SR image of raw set ``t`` at ``sr/0[t]`` and one ``tables/sr`` row; and
        ``error``, the error expected at each of its pixels, at ``sr_error/0[t]`` (stores
        created with ``sr_error``; without it the map stays NaN)."""
        if self._sr is None:
            raise RuntimeError("this store was created without sr_shape")
        img = np.asarray(image, dtype=np.float32)
        if img.shape != self._sr.shape[1:]:
            raise ValueError(f"SR image shape {img.shape} != {self._sr.shape[1:]}")
        err = None
        if error is not None and self._sr_error is not None:
            err = np.asarray(error, dtype=np.float32)
            if err.shape != img.shape:
                raise ValueError(f"SR error map shape {err.shape} != {img.shape}")
        self._sr_row(t, meta, "reconstructed", img, error=err)

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
        error: np.ndarray | None = None,
    ) -> None:
        t = int(t)
        if t < 0:
            raise ValueError("t must be >= 0")
        sr = self._sr
        if sr is None:
            raise RuntimeError("this store was created without sr_shape")
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
            chunk = self._chunk_file(sr, (t, 0, 0)) if img is not None else None
            error_chunk = None
            if error is not None and self._sr_error is not None:
                error_chunk = self._chunk_file(self._sr_error, (t, 0, 0))
            try:
                if img is not None:
                    self._writable(sr, t)[t] = img
                if error is not None and self._sr_error is not None:
                    self._writable(self._sr_error, t)[t] = error
            except Exception as exc:
                raise self._fail(exc, chunk, error_chunk) from exc
            self._written.update(c for c in (chunk, error_chunk) if c is not None)
            if img is not None or stored:
                self.sr_written += 1
            else:
                self.sr_skipped += 1
            self._sr_table.add_rows(rows)
            self._n_sr_t = max(self._n_sr_t, t + 1)
            self._maybe_autoflush()

    def write_table(
        self, name: str, columns: Mapping[str, np.ndarray], description: str = ""
    ) -> None:
        """Store whole ``columns`` (name -> 1-D array, all one length) as ``tables/<name>``,
        with the store's table codec; durable with the next flush (or close)."""
        if name in ("frames", "sr") or not name.isidentifier():
            raise ValueError(f"{name!r} cannot name an extra table")
        arrays = {k: np.asarray(v) for k, v in columns.items()}
        if len({len(v) for v in arrays.values()}) > 1:
            raise ValueError(f"table {name}: columns of different lengths")
        with self._lock:
            self._check_open()
            try:
                group = child_group(self._root, "tables").create_group(name)
                spec = {
                    k: (str(v.dtype), -1 if v.dtype.kind in "iu" else np.nan)
                    for k, v in arrays.items()
                }
                table = Table(group, spec, description=description)
                table.add_rows(arrays)
                table.commit(*table.take(), self._written, self.path)
            except Exception as exc:
                raise self._fail(exc) from exc
            self._written.add(self.path / group.path / "zarr.json")

    def _maybe_autoflush(self) -> None:
        if self._flush_interval is not None and (
            time.monotonic() - self._last_flush >= self._flush_interval
        ):
            self._flush_locked(wait=False)

    # -- durability ------------------------------------------------------------------------
