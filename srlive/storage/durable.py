"""Durability of a store being written: flush, fsync, the root state, close."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import zarr

from srlive.storage.files import StoreWriteError, child_group, fsync_path, json_object
from srlive.storage.ngff import with_time_scale
from srlive.storage.tables import TABLE_CHUNK
from srlive.storage.writer_state import WriterState

__all__ = ["Durable"]


@dataclass
class _FlushJob:
    frames: tuple[dict[str, list[np.ndarray]], dict[str, list[str]] | None]
    sr: tuple[dict[str, list[np.ndarray]], dict[str, list[str]] | None]
    files: set[Path]
    n_sets: int
    n_sr_t: int


class Durable(WriterState):
    """Flush, fsync and close of :class:`srlive.storage.store.AcquisitionStore`."""

    def _all_node_dirs(self) -> list[Path]:
        nodes = [self.path, self.path / "raw", self.path / self._raw.path]
        nodes += [self.path / "tables", self.path / "tables/frames", self.path / "tables/sr"]
        nodes += [self.path / a.path for a in self._frames.arrays.values()]
        nodes += [self.path / a.path for a in self._sr_table.arrays.values()]
        if self._sr is not None:
            nodes += [self.path / "sr", self.path / self._sr.path]
        if self._sr_error is not None:
            nodes += [self.path / "sr_error", self.path / self._sr_error.path]
        return nodes

    def _sync_files(self, files: set[Path]) -> None:
        dirs: set[Path] = set()
        for f in files:
            fsync_path(f)
            dirs.add(f.parent)
        for d in dirs:
            fsync_path(d, directory=True)

    def _write_state(self, **updates: Any) -> None:
        self._state.update(updates)
        self._root.update_attributes({"srlive": dict(self._state)})
        if self._fsync:
            fsync_path(self.path / "zarr.json")
            fsync_path(self.path, directory=True)

    def _commit(self, job: _FlushJob) -> None:
        """Tables and the image arrays' time axes, then fsync, then the counts in the root
        attributes (in this order)."""
        files = set(job.files)
        self._frames.commit(*job.frames, files, self.path)
        self._sr_table.commit(*job.sr, files, self.path)
        self._grow_time_axis(self._raw, job.n_sets, files)
        if self._sr is not None:
            self._grow_time_axis(self._sr, job.n_sr_t, files)
        if self._sr_error is not None:
            self._grow_time_axis(self._sr_error, job.n_sr_t, files)
        if self._fsync:
            self._sync_files(files)
        self._write_state(
            frames_flushed=self._frames.length,
            sets_flushed=job.n_sets,
            sr_flushed=self._sr_table.length,
        )
        self._frames_flushed = self._frames.length
        self._sr_flushed = self._sr_table.length

    def _grow_time_axis(self, arr: zarr.Array, n: int, files: set[Path]) -> None:
        """``arr``'s ``zarr.json`` counts ``n`` time points, every one of them written."""
        if n > arr.shape[0]:
            arr.resize((n, *arr.shape[1:]))
            files.add(self.path / arr.path / "zarr.json")

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
            n_sr_t=self._n_sr_t,
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
                if complete and self._sorted_tables:
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
        col = {k: np.asarray(self._frames.arrays[k][:]) for k in ("t", "a", "p", "time_s")}
        first = (col["a"] == 0) & (col["p"] == 0)
        t, ts = col["t"][first], col["time_s"][first]
        order = np.argsort(t, kind="stable")
        d = np.diff(ts[order]) / np.maximum(np.diff(t[order]), 1)
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if d.size else None

    def _set_time_scale(self, interval: float | None) -> None:
        if not interval:
            return
        for name in ("raw", "sr", "sr_error"):
            if name not in self._root:
                continue
            group = child_group(self._root, name)
            ome = json_object(group.attrs.get("ome"), f"{self.path}/{name}: ome")
            group.update_attributes({"ome": with_time_scale(ome, interval)})
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
