"""Acquisition storage: streaming OME-Zarr (NGFF 0.5 on Zarr v3)."""

from srlive.storage.guard import StoreBusyError, StoreGuardError, claim_output
from srlive.storage.omezarr import (
    FRAME_COLUMN_DEFAULTS,
    AcquisitionStore,
    NoiseRecord,
    StoreDamagedError,
    StoreReader,
    StoreWriteError,
    find_series,
    open_store,
)

__all__ = [
    "FRAME_COLUMN_DEFAULTS",
    "AcquisitionStore",
    "NoiseRecord",
    "StoreBusyError",
    "StoreDamagedError",
    "StoreGuardError",
    "StoreReader",
    "StoreWriteError",
    "claim_output",
    "find_series",
    "open_store",
]
