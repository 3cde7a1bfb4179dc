"""Set chunks written by the workers of a distributed job (no two touch the same file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from srlive.storage.files import frame_crc, fsync_path, image_pipeline

__all__ = ["write_set_chunks"]


def write_set_chunks(
    path: str | os.PathLike[str],
    t: int,
    frames: np.ndarray,
    sr: np.ndarray | None,
    sr_error: np.ndarray | None = None,
) -> tuple[list[int], list[str]]:
    """Write set ``t``'s raw frames (and SR image, and its error map when the store keeps
    one) into a pre-sized store's arrays.

    For workers of a distributed job: each set is its own shard/chunk, so no two writers
    ever touch the same file. The files are fsynced here; the coordinating process then
    records the set (:meth:`AcquisitionStore.record_set`) with the CRCs returned.
    """
    root = Path(path)
    with image_pipeline():
        raw = zarr.open_array(LocalStore(root / "raw" / "0"), mode="r+", zarr_format=3)
    ap, h, w = raw.shape[1:]
    arr = np.asarray(frames).reshape(ap, h, w)
    if arr.dtype != np.uint16:
        arr = arr.astype(np.uint16)
    if not 0 <= t < raw.shape[0]:
        raise ValueError(f"set {t} is outside {root}'s {raw.shape[0]} sets")
    raw[t] = arr
    files = [root / "raw" / "0" / raw.metadata.encode_chunk_key((t, 0, 0, 0))]
    if sr is not None:
        with image_pipeline():
            sr_arr = zarr.open_array(LocalStore(root / "sr" / "0"), mode="r+", zarr_format=3)
        sr_arr[t] = np.asarray(sr, np.float32)
        files.append(root / "sr" / "0" / sr_arr.metadata.encode_chunk_key((t, 0, 0)))
    if sr_error is not None and (root / "sr_error" / "0").is_dir():
        err_arr = zarr.open_array(LocalStore(root / "sr_error" / "0"), mode="r+", zarr_format=3)
        err_arr[t] = np.asarray(sr_error, np.float32)
        files.append(root / "sr_error" / "0" / err_arr.metadata.encode_chunk_key((t, 0, 0)))
    for f in files:
        fsync_path(f)
    return [frame_crc(f) for f in arr], [str(f) for f in files]
