"""Tables of a store: one zarr group per table, one resizable 1-D array per column.

The column order and dtypes are in the group's attributes (``columns``, ``dtypes``), text
columns are integer codes into ``attrs["categories"]`` (-1: none), and rows are appended in
buffered batches (:class:`Table`). :func:`read_table` decodes a table back to columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.storage.files import StoreDamagedError, child_array, json_list, json_object

__all__ = [
    "DEFAULT_SR_EXTRAS",
    "FRAME_COLUMN_DEFAULTS",
    "SR_COLUMN_DEFAULTS",
    "SR_STATUSES",
    "TABLE_CHUNK",
    "Table",
    "decode",
    "frame_columns",
    "read_table",
]

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


class Table:
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
    def reopen(cls, group: zarr.Group, length: int) -> Table:
        """An existing table, cut back to its ``length`` durable rows (a resumed store)."""
        self = object.__new__(cls)
        self.group = group
        where = str(group.store_path)
        dtypes = json_object(group.attrs.get("dtypes"), f"{where}: dtypes")
        columns = [str(name) for name in json_list(group.attrs.get("columns"), f"{where}: columns")]
        self.arrays = {name: child_array(group, name) for name in columns}
        self.columns = {
            name: (str(dtypes[name]), np.asarray(self.arrays[name].fill_value).item())
            for name in columns
        }
        self.categories = _categories(group)
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
        cols = {name: np.asarray(arr[:]) for name, arr in self.arrays.items()}
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


def frame_columns(
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


def decode(codes: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Category codes as their strings (-1: "")."""
    labels = np.asarray([*categories, ""], dtype=object)
    return labels[np.where(codes < 0, len(labels) - 1, codes)].astype(str)


def read_table(group: zarr.Group, n: int | None, where: str) -> dict[str, np.ndarray]:
    """The first ``n`` rows (None: all) of a table, categories decoded; damage raises."""
    cols: dict[str, np.ndarray] = {}
    cats = _categories(group)
    for name in (str(c) for c in json_list(group.attrs.get("columns", []), f"{where}: columns")):
        if name not in group:
            raise StoreDamagedError(f"{where}/{name} is missing (a column of the table)")
        try:
            column = child_array(group, name)
            data = np.asarray(column[:] if n is None else column[:n])
        except Exception as exc:
            raise StoreDamagedError(
                f"{where}/{name} cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        if n is not None and len(data) < n:
            raise StoreDamagedError(
                f"{where}/{name} has {len(data)} rows, the store recorded {n} as durable"
            )
        cols[name] = decode(data, cats[name]) if name in cats else data
    return cols


def _categories(group: zarr.Group) -> dict[str, list[str]]:
    """A table's categories (column -> its labels), checked."""
    where = f"{group.store_path}: categories"
    cats = json_object(group.attrs.get("categories", {}), where)
    return {str(k): [str(v) for v in json_list(labels, where)] for k, labels in cats.items()}
