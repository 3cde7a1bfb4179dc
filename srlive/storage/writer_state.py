"""The state a store being written keeps, shared by the writer's parts
(:class:`~srlive.storage.writes.Writes`, :class:`~srlive.storage.durable.Durable`), and the
failure bookkeeping they both use."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zarr

from srlive.storage.files import StoreWriteError, describe
from srlive.storage.guard import OutputLock
from srlive.storage.tables import Table

__all__ = ["WriterState"]


class WriterState:
    """Attributes of :class:`~srlive.storage.store.AcquisitionStore` (set when it is created
    or resumed), the open/failed checks and the hook its parts call across."""

    path: Path
    frame_shape: tuple[int, int]
    n_angles: int
    n_phases: int
    pixel_nm: float
    sr_pixel_nm: float | None
    sr_method: str | None
    frames_written: int
    sr_written: int
    sr_skipped: int

    _root: zarr.Group
    _raw: zarr.Array
    _sr: zarr.Array | None
    _sr_error: zarr.Array | None  # the learned error map beside sr (stores made with sr_error)
    _frames: Table
    _sr_table: Table
    _frame_cols: list[str]
    _sr_cols: list[str]
    _state: dict[str, Any]  # the root's "srlive" attributes
    _claim: OutputLock | None  # None: the directory is held by the run that holds its parent

    _lock: threading.RLock
    _closed: bool
    _failed: str | None  # the first write that failed (the store is done)
    _commit_failed: bool  # a table commit failed: the buffered rows are not reliable
    _flush_interval: float | None
    _fsync: bool
    _interval_s: float | None
    _written: set[Path]  # files written since the last flush (fsynced by it)
    _last_flush: float
    _warned_keys: set[str]
    _job: Future[None] | None  # the background commit in progress
    _executor: ThreadPoolExecutor
    _frames_flushed: int
    _sr_flushed: int
    _n_sets: int  # 1 + largest raw set index written
    _n_sr_t: int  # 1 + largest SR set index written
    _handles: dict[str, zarr.Array]  # image array path -> its writing handle (Writes._writable)
    _sorted_tables: bool = False  # sort the tables by set at close (sets in any order)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        if self._failed is not None:
            raise StoreWriteError(
                f"{self.path}: writing stopped after a failed write: {self._failed}"
            )

    def _fail(self, exc: BaseException, *partial: Path | None) -> StoreWriteError:
        """Record the first failed write; the store accepts no more data after it.

        ``partial``: the chunk files the failed write was writing in place (image arrays,
        zarrs): removed, so a full disk gets its space back for the failure record."""
        for path in partial:
            if path is None:
                continue
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        if self._failed is None:
            self._failed = describe(exc)
        return StoreWriteError(f"{self.path}: {self._failed}")

    def _flush_locked(self, wait: bool) -> None:
        """Commit what was written so far (:class:`~srlive.storage.durable.Durable`)."""
        raise NotImplementedError
