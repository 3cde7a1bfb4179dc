"""The image arrays' codec pipeline: zarrs' Rust pipeline whose file store is renewed.

zarrs' file store (one per array object; zarrs-python makes it with the array's pipeline)
keeps a lock for every chunk file it has written and never frees one: about 200 bytes per
file, so a writer that lives for hours grows by that for every raw set and SR image it
stores (~400 bytes per set measured, ``srlive bench storage`` figures in the README).
:class:`ImageCodecPipeline` hands each array a fresh store every :data:`RENEW_AFTER_WRITES`
writes (making one takes ~0.1 ms, a set's write ~4 ms), which bounds those locks to a few
hundred per array. The locks only order writers of one file inside one store; srlive
writes each image chunk file once, under the store's own lock, so no two writes of a file
ever overlap across a renewal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from zarr.core.config import config
from zarr.registry import register_pipeline
from zarrs.pipeline import ZarrsCodecPipeline, get_codec_pipeline_impl

if TYPE_CHECKING:
    from collections.abc import Iterable

    from zarr.abc.store import ByteSetter
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import NDBuffer
    from zarr.core.indexing import SelectorTuple

__all__ = ["RENEW_AFTER_WRITES", "ImageCodecPipeline"]

RENEW_AFTER_WRITES = 256  # writes (a set's shard, an SR image) between two fresh stores


@dataclass
class ImageCodecPipeline(ZarrsCodecPipeline):
    """zarrs' codec pipeline with a fresh file store every :data:`RENEW_AFTER_WRITES`
    writes (see the module docstring)."""

    writes_since_renewal: int = 0

    def renew(self) -> None:
        """A fresh zarrs store (and the codec chain with it): the written files' locks go."""
        strict = bool(config.get("codec_pipeline.strict", False))
        self.impl = get_codec_pipeline_impl(self.metadata, self.store, strict=strict)
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
