"""Optimizer decisions and per-set metrics as tables in a series' OME-Zarr group.

``<series>/tables/optimizer/`` (one row per timepoint: the setting applied and why) and
``<series>/tables/optimizer_metrics/`` (one row per acquired set: what was measured) sit next
to the store's ``tables/frames`` and ``tables/sr`` and are written by the same codec
(:class:`srlive.storage.tables.Table`): one 1-D array per scalar field, text as integer
codes into ``attrs["categories"]``. Each row is stored once: what has no column (nested
values, None, non-finite numbers) is kept per row in ``attrs["rest"]``, and ``attrs["kinds"]``
says which numeric columns hold integers or booleans, so :func:`read_records` gives the
rows back as they were given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.storage.files import child_array, child_group, json_list, json_object, jsonable
from srlive.storage.tables import Table
from srlive.storage.tables import read_table as read_columns

DECISIONS = "optimizer"
METRICS = "optimizer_metrics"
CATEGORY = ("int16", -1)
NUMBER = ("float64", math.nan)


def _kind(value: Any) -> str | None:
    """The column kind of a scalar value (None: no column holds it)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "category"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating) and math.isfinite(value):
        return "float"
    return None


def _columns(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Column kinds in first-seen order; mixed numeric kinds become float, any text category."""
    kinds: dict[str, str] = {}
    for row in rows:
        for key, value in row.items():
            kind = _kind(value)
            if kind is None:
                continue
            old = kinds.get(key, kind)
            if "category" in (old, kind):
                kinds[key] = "category"
            else:
                kinds[key] = kind if old == kind else "float"
    return kinds


def _fits(kind: str, value: Any) -> bool:
    got = _kind(value)
    return got is not None and (got == kind or (kind == "float" and got != "category"))


def write_table(series: str | Path, name: str, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as ``tables/<name>`` of the series group at ``series`` (replaces it)."""
    root = zarr.open_group(str(series), mode="r+")
    tables = root.require_group("tables")
    if name in tables:
        del tables[name]
    kinds = _columns(rows)
    description = (
        "optimizer decisions, one row per timepoint"
        if name == DECISIONS
        else "optimizer metrics, one row per acquired set"
    )
    table = Table(
        tables.create_group(name),
        {c: CATEGORY if k == "category" else NUMBER for c, k in kinds.items()},
        description=description,
    )
    values: dict[str, list[Any]] = {c: [] for c in kinds}
    rest: list[dict[str, Any]] = []
    for row in rows:
        for col, kind in kinds.items():
            v = row.get(col)
            if v is None or not _fits(kind, v):
                values[col].append(None)
            elif kind == "category":
                values[col].append(table.code(col, str(v)))
            else:
                values[col].append(float(v))
        rest.append({k: jsonable(v) for k, v in row.items() if not _fits(kinds.get(k, ""), v)})
    table.add_rows(table.convert(values))
    table.commit(*table.take(), set(), Path(series))
    table.group.update_attributes(
        {"kinds": {c: k for c, k in kinds.items() if k != "category"}, "rest": rest}
    )


def read_table(series: str | Path, name: str = DECISIONS) -> dict[str, np.ndarray]:
    """Columns of ``tables/<name>`` (categories decoded to strings)."""
    group = child_group(zarr.open_group(str(series), mode="r"), f"tables/{name}")
    return read_columns(group, None, f"{series}/tables/{name}")


def read_records(series: str | Path, name: str = DECISIONS) -> list[dict[str, Any]]:
    """The rows of ``tables/<name>`` as they were written (JSON types)."""
    group = child_group(zarr.open_group(str(series), mode="r"), f"tables/{name}")
    where = f"{series}/tables/{name}"
    kinds = json_object(group.attrs.get("kinds", {}), f"{where}: kinds")
    cats = json_object(group.attrs.get("categories", {}), f"{where}: categories")
    names = [str(c) for c in json_list(group.attrs.get("columns", []), f"{where}: columns")]
    columns = {c: np.asarray(child_array(group, c)[:]) for c in names}
    records: list[dict[str, Any]] = []
    for i, rest in enumerate(json_list(group.attrs.get("rest", []), f"{where}: rest")):
        record: dict[str, Any] = {}
        for col, data in columns.items():
            v = data[i]
            if col in cats:
                if v >= 0:
                    record[col] = cats[col][int(v)]
            elif math.isfinite(v):
                kind = kinds.get(col)
                record[col] = int(v) if kind == "int" else bool(v) if kind == "bool" else float(v)
        record.update(json_object(rest, f"{where}: rest[{i}]"))
        records.append(record)
    return records
