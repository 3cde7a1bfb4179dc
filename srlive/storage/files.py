"""Small helpers every part of a store shares: JSON values, codecs, CRCs, errors, fsync."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, ZstdCodec
from zlib_ng import zlib_ng

from srlive.storage.codec_pipeline import IMAGE_PIPELINE

__all__ = [
    "StoreDamagedError",
    "StoreWriteError",
    "child_array",
    "child_group",
    "compressors",
    "describe",
    "frame_crc",
    "fsync_path",
    "image_pipeline",
    "json_list",
    "json_object",
    "jsonable",
    "load_json",
    "software",
]


class StoreWriteError(OSError):
    """Writing a store failed (disk full, permissions, ...); it accepts no more data."""


class StoreDamagedError(ValueError):
    """A store (or the part of it a reader needs) is missing, truncated or corrupted."""


def software() -> str:
    """``srlive <version>``, as recorded in a store's root attributes."""
    try:
        return f"srlive {version('srlive')}"
    except PackageNotFoundError:  # pragma: no cover
        return "srlive (uninstalled)"


def jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (numpy scalars, paths, tuples, sets, models)."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted((jsonable(v) for v in obj), key=str)
    if hasattr(obj, "model_dump"):  # pydantic models
        return jsonable(obj.model_dump(mode="json"))
    return str(obj)


def compressors(name: str | None, level: int | None) -> Any:
    """The Zarr codec for ``name`` (None / "none", "zstd", "blosc")."""
    if name is None or name == "none":
        return None
    if name == "zstd":
        return ZstdCodec(level=1 if level is None else level)
    if name == "blosc":
        return BloscCodec(
            cname="lz4", clevel=5 if level is None else level, shuffle=BloscShuffle.bitshuffle
        )
    raise ValueError(f"unknown compressor {name!r}; use None, 'zstd' or 'blosc'")


PIPELINE_ENV = "SRLIVE_IMAGE_CODEC_PIPELINE"  # another zarr codec pipeline class, by path


@contextmanager
def image_pipeline() -> Iterator[None]:
    """Arrays created or opened inside encode and write their chunks through zarrs' Rust
    codec pipeline (``srlive bench storage`` measures it against zarr-python's own), its
    file store renewed as it goes (:mod:`srlive.storage.codec_pipeline`).

    Only the image arrays use it: each of their chunk files is written once (one set, one
    shard) and counted only after it is fsynced, so zarrs' in-place writes are safe there.
    Tables and metadata stay on zarr-python's pipeline, whose local store replaces a file
    atomically (a table's last chunk is rewritten at every flush). ``SRLIVE_IMAGE_CODEC_PIPELINE``
    names another pipeline class (``zarr.core.codec_pipeline.BatchedCodecPipeline``: zarr's).
    zarr's configuration is process-wide: keep the block to creating or opening arrays.
    """
    path = os.environ.get(PIPELINE_ENV) or IMAGE_PIPELINE
    with zarr.config.set({"codec_pipeline.path": path}):
        yield


def frame_crc(frame: np.ndarray) -> int:
    """CRC-32 of one frame's bytes in C order (the ``crc32`` frame column).

    The same value as ``zlib.crc32``, computed by zlib-ng's folded (PCLMULQDQ) CRC: 15-20x
    the system zlib's speed on this project's AVX2 machine (``crc32_MBps`` in ``srlive
    bench storage``), where zlib's took about 4 ms of every 4.7 MB set."""
    return zlib_ng.crc32(np.ascontiguousarray(frame))


def describe(exc: BaseException) -> str:
    """One line naming the cause of a failed write."""
    if isinstance(exc, StoreWriteError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"write failed: {exc.strerror}{where}"
    return f"write failed: {type(exc).__name__}: {exc}"


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync one file (or directory); a file that does not exist is skipped."""
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


def load_json(path: Path, root: Path) -> dict[str, Any]:
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


def json_object(value: object, where: str) -> dict[str, Any]:
    """A zarr attribute that must be a JSON object, as a dict; StoreDamagedError naming
    ``where`` if it is anything else."""
    if not isinstance(value, Mapping):
        raise StoreDamagedError(f"{where} is not a JSON object ({type(value).__name__})")
    return dict(value)


def json_list(value: object, where: str) -> list[Any]:
    """A zarr attribute that must be a JSON array, as a list; StoreDamagedError naming
    ``where`` if it is anything else."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise StoreDamagedError(f"{where} is not a JSON array ({type(value).__name__})")
    return list(value)


def child_array(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` in ``group``; StoreDamagedError if a group stands there."""
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise StoreDamagedError(f"{group.store_path}/{path} is a group where an array belongs")
    return node


def child_group(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` in ``group``; StoreDamagedError if an array stands there."""
    node = group[path]
    if not isinstance(node, zarr.Group):
        raise StoreDamagedError(f"{group.store_path}/{path} is an array where a group belongs")
    return node
