"""The image arrays' codec pipeline: zarrs' Rust pipeline, writing past the page cache
where the file system allows it, its file store renewed as it goes.

**Direct I/O.** A set's shard is written once and never read back by the writer, so copying
it into the page cache buys nothing and costs the kernel most of a write's CPU time: 200
sets of 9 × 512² through zarrs took 0.5 s user and 2.0 s system CPU through the page cache,
0.8 s and 0.3 s with ``O_DIRECT`` (this project's 2-core machine, loaded; ``srlive bench
storage`` has the store's figures). :class:`ImageCodecPipeline` asks zarrs to open chunk files with
``O_DIRECT`` (its ``codec_pipeline.direct_io`` setting) when a probe write in the store's
directory shows the file system takes it (:func:`direct_io_works`; tmpfs and some network
file systems do not: they keep the page cache). Durability is unchanged: the writer still
fsyncs every chunk file (and its directory) before it counts it, which also flushes the
device's cache and the file's metadata. ``SRLIVE_DIRECT_IO=0`` turns it off.

The page-aligned buffer zarrs assembles a shard in for ``O_DIRECT`` is, under glibc, a fresh
``mmap`` at every write (an aligned request is always just above glibc's adaptive mmap
threshold), so every page of every set faulted in anew: ~1,500 page faults and ~3 ms of
system CPU per 4.7 MB set. :func:`keep_shard_buffers` sets the thresholds that glibc's own
adaptive rule would have reached (heap below 32 MiB, trim above twice that), so the buffer's
pages are reused: ~90 faults per set (measured with getrusage, 100 sets of 9 × 512²).

**Renewal.** zarrs' file store (one per array object; zarrs-python makes it with the array's
pipeline) keeps a lock for every chunk file it has written and never frees one: about 200
bytes per file, so a writer that lives for hours grows by that for every raw set and SR
image it stores. :class:`ImageCodecPipeline` hands each array a fresh store every
:data:`RENEW_AFTER_WRITES` writes (making one takes ~0.1 ms, a set's write several ms), which
bounds those locks to a few hundred per array. The locks only order writers of one file
inside one store; srlive writes each image chunk file once, under the store's own lock, so
no two writes of a file ever overlap across a renewal.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from zarr.core.config import config
from zarr.registry import register_pipeline
from zarr.storage import LocalStore
from zarrs.pipeline import ZarrsCodecPipeline, get_codec_pipeline_fallback, get_codec_pipeline_impl

if TYPE_CHECKING:
    from collections.abc import Iterable

    from zarr.abc.store import ByteSetter, Store
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import NDBuffer
    from zarr.core.indexing import SelectorTuple
    from zarr.core.metadata import ArrayMetadata
    from zarrs._internal import CodecPipelineImpl

__all__ = [
    "DIRECT_IO_ENV",
    "RENEW_AFTER_WRITES",
    "ImageCodecPipeline",
    "direct_io_works",
    "keep_shard_buffers",
]

RENEW_AFTER_WRITES = 256  # writes (a set's shard, an SR image) between two fresh stores
DIRECT_IO_ENV = "SRLIVE_DIRECT_IO"  # "0": write image chunks through the page cache

_CONFIG_LOCK = threading.Lock()  # zarr's configuration is process-wide
_DIRECT_IO: dict[int, bool] = {}  # file system (st_dev) -> whether it takes O_DIRECT


def direct_io_works(store: Store) -> bool:
    """Whether ``store`` is a local directory on a file system that takes ``O_DIRECT``
    writes (and ``SRLIVE_DIRECT_IO`` does not say 0)."""
    if os.environ.get(DIRECT_IO_ENV, "1") == "0" or not isinstance(store, LocalStore):
        return False
    directory = Path(store.root)
    while not directory.is_dir() and directory != directory.parent:
        directory = directory.parent
    device = os.stat(directory).st_dev
    if device not in _DIRECT_IO:  # once per file system
        _DIRECT_IO[device] = _probe(directory)
    return _DIRECT_IO[device]


def _probe(directory: Path) -> bool:
    """Whether one page written with ``O_DIRECT`` into ``directory`` gets written."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False  # not Linux
    probe = directory / f".srlive-direct-io-{os.getpid()}-{threading.get_ident()}"
    page = mmap.mmap(-1, mmap.PAGESIZE)  # page-aligned, as O_DIRECT wants
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flag, 0o600)
        try:
            return os.write(fd, page) == mmap.PAGESIZE
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)
        page.close()


HEAP_BELOW = 32 << 20  # glibc's largest mmap threshold (its adaptive rule's ceiling)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


@functools.cache
def keep_shard_buffers() -> bool:
    """Allocations below :data:`HEAP_BELOW` from glibc's heap, and up to twice that kept free
    on top of it, so a shard's buffer reuses its pages (the module docstring); False where
    the C library has no ``mallopt`` (not glibc) or refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_BELOW)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * HEAP_BELOW)
    )


def _rust_impl(metadata: ArrayMetadata, store: Store, direct_io: bool) -> CodecPipelineImpl | None:
    """zarrs' pipeline for ``metadata``, with or without direct I/O whatever the process's
    zarr configuration says at this moment."""
    strict = bool(config.get("codec_pipeline.strict", False))
    with _CONFIG_LOCK, config.set({"codec_pipeline.direct_io": direct_io}):
        return get_codec_pipeline_impl(metadata, store, strict=strict)


@dataclass
class ImageCodecPipeline(ZarrsCodecPipeline):
    """zarrs' codec pipeline writing with ``O_DIRECT`` where it can, with a fresh file store
    every :data:`RENEW_AFTER_WRITES` writes (see the module docstring)."""

    direct_io: bool = False
    writes_since_renewal: int = 0

    @classmethod
    def from_array_metadata_and_store(cls, array_metadata: ArrayMetadata, store: Store) -> Self:
        direct_io = direct_io_works(store)
        if direct_io:
            keep_shard_buffers()
        strict = bool(config.get("codec_pipeline.strict", False))
        return cls(
            metadata=array_metadata,
            store=store,
            impl=_rust_impl(array_metadata, store, direct_io),
            python_impl=get_codec_pipeline_fallback(array_metadata, strict=strict),
            direct_io=direct_io,
        )

    def renew(self) -> None:
        """A fresh zarrs store (and the codec chain with it): the written files' locks go."""
        self.impl = _rust_impl(self.metadata, self.store, self.direct_io)
        self.writes_since_renewal = 0

    async def write(
        self,
        batch_info: Iterable[tuple[ByteSetter, ArraySpec, SelectorTuple, SelectorTuple, bool]],
        value: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> None:
        # runs on zarr's event loop thread: no other write of this array between the two
        if self.impl is not None and self.writes_since_renewal >= RENEW_AFTER_WRITES:
            self.renew()
        self.writes_since_renewal += 1
        await super().write(batch_info, value, drop_axes)


register_pipeline(ImageCodecPipeline)
IMAGE_PIPELINE = f"{ImageCodecPipeline.__module__}.{ImageCodecPipeline.__qualname__}"
