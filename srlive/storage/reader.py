"""The read side of a store: :func:`open_store` and :class:`StoreReader` (checked reads)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from srlive.storage.files import (
    StoreDamagedError,
    child_array,
    child_group,
    frame_crc,
    json_object,
    load_json,
)
from srlive.storage.noise import NoiseRecord
from srlive.storage.tables import read_table

__all__ = ["StoreReader", "open_store"]


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
    sr_error: zarr.Array | None = None  # the expected error per SR pixel (learned methods)
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
    def camera(self) -> NoiseRecord | None:
        """The camera noise model the frames were taken with (None: a store older than
        layout 2, which did not record it)."""
        return NoiseRecord.from_attrs(self.attrs)

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

    def read_sr_error(self, t: int) -> np.ndarray:
        """The error expected at each pixel of set ``t``'s SR image (NaN where none was
        stored); ValueError for a store without an error map."""
        if self.sr_error is None:
            raise ValueError(f"{self.path} has no SR error map")
        if self.sr_status().get(t) == "reconstructed" and t < self.sr_error.shape[0]:
            return self._read(self.sr_error, t, [(t, 0, 0)])
        return np.full(self.sr_error.shape[1:], np.nan, np.float32)

    def sr_status(self) -> dict[int, str]:
        """Per raw set t given to the reconstruction: "reconstructed" or "skipped".

        Stores written before the ``status`` column existed list every row as reconstructed.
        """
        ts = self.sr_table.get("t", np.zeros(0, np.int32))
        status = self.sr_table.get("status")
        if status is None:
            return {int(t): "reconstructed" for t in ts}
        return {int(t): str(s) or "reconstructed" for t, s in zip(ts, status, strict=True)}


def _check_metadata(p: Path) -> None:
    """Every metadata file a reader needs exists and parses (named when it does not)."""
    root = load_json(p / "zarr.json", p)
    if not isinstance(root.get("attributes", {}).get("srlive"), dict):
        raise StoreDamagedError(f"{p} is not an srlive acquisition store (no srlive attributes)")
    nodes = ["raw", "raw/0", "tables", "tables/frames", "tables/sr"]
    if root["attributes"]["srlive"].get("sr_shape") is not None:
        nodes += ["sr", "sr/0"]
    if root["attributes"]["srlive"].get("sr_error"):
        nodes += ["sr_error", "sr_error/0"]
    for node in nodes:
        meta = load_json(p / node / "zarr.json", p)
        if node.startswith("tables/"):
            for column in meta.get("attributes", {}).get("columns", []):
                load_json(p / node / str(column) / "zarr.json", p)


SERIES_PARTS = ("OME", "raw", "sr", "tables")  # a store's own groups, never series


def _is_series(p: Path) -> bool:
    """A series store (raw sets and tables), not a run's root collection."""
    return (p / "raw" / "zarr.json").is_file()


def find_series(path: str | os.PathLike[str]) -> dict[str, Path]:
    """The series stores of a run store by name (a series store itself is ``""``; stores
    of layout 2 nested a live run's later modalities in its first series).

    One-line errors for anything else: FileNotFoundError, or ValueError when ``path`` holds
    no srlive series.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such store: {p}")
    series = {"": p} if _is_series(p) else {}
    if p.is_dir():
        series |= {
            child.name: child
            for child in sorted(p.iterdir())
            if child.is_dir() and child.name not in SERIES_PARTS and _is_series(child)
        }
    if not series:
        raise ValueError(f"{p} holds no srlive acquisition (no raw/ series)")
    return series


def open_store(path: str | os.PathLike[str]) -> StoreReader:
    """Open an acquisition store read-only (works on incomplete, crashed stores).

    ``path`` is a series store, or a run store holding one series (a run of several series
    needs the series' path: ``<run>/<series>``). Raises FileNotFoundError if there is nothing
    at ``path`` and StoreDamagedError (one line, naming the file) if its metadata or tables
    are missing or damaged.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such store")
    if not p.is_dir():
        raise StoreDamagedError(f"{p} is not an srlive store (not a directory)")
    if not _is_series(p) and (p / "zarr.json").is_file():
        try:
            series = find_series(p)
        except ValueError:
            series = {}
        if len(series) == 1:
            p = next(iter(series.values()))
        elif len(series) > 1:
            names = ", ".join(series)
            raise ValueError(f"{p} holds {len(series)} series ({names}): open one of them")
    _check_metadata(p)
    try:
        root = zarr.open_group(LocalStore(p, read_only=True), mode="r", zarr_format=3)
        attrs = json_object(root.attrs.get("srlive"), f"{p}: the srlive attributes")
        tables = child_group(root, "tables")
        raw = child_array(root, "raw/0")
        sr = child_array(root, "sr/0") if "sr" in root else None
        sr_error = child_array(root, "sr_error/0") if "sr_error" in root else None
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
        frames=read_table(
            child_group(tables, "frames"), int(attrs["frames_flushed"]), f"{p}/tables/frames"
        ),
        sr_table=read_table(child_group(tables, "sr"), int(attrs["sr_flushed"]), f"{p}/tables/sr"),
        sr_error=sr_error,
    )
