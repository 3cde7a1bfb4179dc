"""Acquisition storage: streaming OME-Zarr (NGFF 0.5 on Zarr v3)."""

from srlive.storage.omezarr import (
    FRAME_COLUMN_DEFAULTS,
    AcquisitionStore,
    StoreReader,
    open_store,
)

__all__ = ["FRAME_COLUMN_DEFAULTS", "AcquisitionStore", "StoreReader", "open_store"]
