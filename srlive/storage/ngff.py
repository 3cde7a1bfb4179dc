"""NGFF 0.5 metadata of a store, built through yaozarrs' models.

A store's root is a bioformats2raw-style collection (``"bioformats2raw.layout": 3``) whose
``OME/`` group lists its images in ``series`` (``raw``, ``sr``, and those of the series
stores nested in it); each image is a single-level multiscales group (see
:mod:`srlive.storage.omezarr` for the layout). The dicts returned here are what the groups'
``"ome"`` attributes hold.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zarr
from yaozarrs import v05
from zarr.storage import LocalStore

from srlive.storage.guard import holds_lock, srlive_attrs

__all__ = [
    "AP_AXIS",
    "NGFF_VERSION",
    "OME_GROUP",
    "collection_ome",
    "image_ome",
    "raw_axes",
    "register_in_parents",
    "series_ome",
    "sr_axes",
    "with_time_scale",
]

NGFF_VERSION = "0.5"
AP_AXIS = "ap"
OME_GROUP = "OME"  # the collection's group whose "series" lists its images
_REGISTER = threading.Lock()  # one read-modify-write of a collection's series at a time


def _dump(model: v05.Image | v05.Bf2Raw | v05.Series) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def raw_axes() -> list[v05.Axis]:
    """t, ap (angle × phase, one custom axis: NGFF allows one besides time and space), y, x."""
    return [
        v05.TimeAxis(name="t", unit="second"),
        v05.CustomAxis(name=AP_AXIS, type="angle_phase"),
        v05.SpaceAxis(name="y", unit="nanometer"),
        v05.SpaceAxis(name="x", unit="nanometer"),
    ]


def sr_axes() -> list[v05.Axis]:
    return [
        v05.TimeAxis(name="t", unit="second"),
        v05.SpaceAxis(name="y", unit="nanometer"),
        v05.SpaceAxis(name="x", unit="nanometer"),
    ]


def image_ome(name: str, axes: Sequence[v05.Axis], scale: Sequence[float]) -> dict[str, Any]:
    """The ``"ome"`` attribute of a single-level multiscales image (its array at ``0``)."""
    dataset = v05.Dataset(
        path="0", coordinateTransformations=[v05.ScaleTransformation(scale=list(scale))]
    )
    return _dump(v05.Image(multiscales=[v05.Multiscale(name=name, axes=axes, datasets=[dataset])]))


def with_time_scale(ome: Mapping[str, Any], interval_s: float) -> dict[str, Any]:
    """An image's ``"ome"`` attribute with the time step of its scale set to ``interval_s``."""
    data = json.loads(json.dumps(ome))
    data["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"][0] = float(
        interval_s
    )
    return _dump(v05.Image.model_validate(data))


def collection_ome() -> dict[str, Any]:
    """The root's ``"ome"`` attribute: a bioformats2raw-layout collection."""
    return _dump(v05.Bf2Raw.model_validate({"bioformats2raw.layout": 3}))


def series_ome(paths: Sequence[str]) -> dict[str, Any]:
    """``OME/``'s ``"ome"`` attribute: the collection's image paths, in order."""
    return _dump(v05.Series(series=list(paths)))


def _series_of(root: Path) -> list[str]:
    try:
        meta = json.loads((root / OME_GROUP / "zarr.json").read_text())
    except (OSError, ValueError):
        return []
    return list(meta.get("attributes", {}).get("ome", {}).get("series", []))


def add_series(root: Path, paths: Sequence[str]) -> list[Path]:
    """Append ``paths`` to the collection at ``root`` (made one if it is not); files written."""
    written: list[Path] = []
    with _REGISTER:
        meta = json.loads((root / "zarr.json").read_text())
        ome = meta.get("attributes", {}).get("ome", {})
        if "bioformats2raw.layout" not in ome:  # a protocol's root: a collection from now on
            group = zarr.open_group(LocalStore(root), mode="r+", zarr_format=3)
            group.update_attributes({"ome": collection_ome()})
            written.append(root / "zarr.json")
        listed = _series_of(root)
        listed += [p for p in paths if p not in listed]
        group = zarr.open_group(LocalStore(root / OME_GROUP), mode="a", zarr_format=3)
        group.update_attributes({"ome": series_ome(listed)})
        written.append(root / OME_GROUP / "zarr.json")
    return written


def register_in_parents(path: Path, images: Sequence[str]) -> list[Path]:
    """List the images of the store at ``path`` in each enclosing srlive store's ``OME/``.

    Only stores this process is writing (it holds their lock: a live run's root series, a
    protocol's root) are changed, so a store written into another one by mistake never
    touches it. Returns the files written (to fsync).
    """
    written: list[Path] = []
    prefix, parent = path.name, path.absolute().parent
    while parent != parent.parent and holds_lock(parent) and srlive_attrs(parent) is not None:
        written += add_series(parent, [f"{prefix}/{image}" for image in images])
        prefix, parent = f"{parent.name}/{prefix}", parent.parent
    return written
