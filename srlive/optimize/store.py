"""Optimizer decisions and per-set metrics as tables in a series' OME-Zarr group.

``<series>/tables/optimizer/`` (one row per timepoint: the setting applied and why) and
``<series>/tables/optimizer_metrics/`` (one row per acquired set: what was measured) sit next
to the store's ``tables/frames`` and ``tables/sr``, in the same layout: one 1-D array per
column, the column order and dtypes in the group's attributes, text columns as integer codes
into ``attrs["categories"]``. The full JSON-ready records are kept in ``attrs["records"]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.storage.omezarr import _jsonable

DECISIONS = "optimizer"
METRICS = "optimizer_metrics"


def _columns(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Flat columns (name -> 'float64' | 'category') of the rows' scalar values."""
    cols: dict[str, str] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, dict | list | tuple):
                continue
            kind = "category" if isinstance(value, str) else "float64"
            if cols.get(key) != "category":
                cols[key] = kind
    return cols


def write_table(series: str | Path, name: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as ``tables/<name>`` of the series group at ``series`` (replaces it)."""
    root = zarr.open_group(str(series), mode="r+")
    tables = root.require_group("tables")
    if name in tables:
        del tables[name]
    group = tables.create_group(name)
    cols = _columns(rows)
    categories: dict[str, list[str]] = {}
    for col, kind in cols.items():
        values = [row.get(col) for row in rows]
        if kind == "category":
            cats = categories.setdefault(col, [])
            codes = []
            for v in values:
                if v is None:
                    codes.append(-1)
                    continue
                v = str(v)
                if v not in cats:
                    cats.append(v)
                codes.append(cats.index(v))
            data = np.asarray(codes, np.int16)
        else:
            data = np.asarray([math.nan if v is None else float(v) for v in values], np.float64)
        array = group.create_array(
            col, shape=data.shape, dtype=data.dtype, chunks=(max(1, len(data)),)
        )
        array[:] = data
    group.update_attributes(
        {
            "columns": list(cols),
            "dtypes": {c: ("int16" if k == "category" else k) for c, k in cols.items()},
            "categories": categories,
            "description": "optimizer decisions, one row per timepoint"
            if name == DECISIONS
            else "optimizer metrics, one row per acquired set",
            "records": _jsonable(list(rows)),
        }
    )


def read_table(series: str | Path, name: str = DECISIONS) -> dict[str, np.ndarray]:
    """Columns of ``tables/<name>`` (categories decoded to strings)."""
    group = zarr.open_group(str(series), mode="r")[f"tables/{name}"]
    cats = dict(group.attrs.get("categories", {}))
    out: dict[str, np.ndarray] = {}
    for col in group.attrs.get("columns", []):
        data = np.asarray(group[col][:])
        if col in cats:
            labels = np.asarray([*cats[col], ""], dtype=object)
            data = labels[np.where(data < 0, len(labels) - 1, data)].astype(str)
        out[col] = data
    return out


def read_records(series: str | Path, name: str = DECISIONS) -> list[dict[str, Any]]:
    """The JSON-ready records of ``tables/<name>``."""
    group = zarr.open_group(str(series), mode="r")[f"tables/{name}"]
    return list(group.attrs.get("records", []))
