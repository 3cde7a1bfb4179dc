"""Streaming OME-Zarr (NGFF 0.5, Zarr v3) acquisition store: the layout and public names.

Layout of one acquisition (``<name>.zarr``; store layout 2)::

    zarr.json             root: "ome" {"version": "0.5", "bioformats2raw.layout": 3}
                          and "srlive" (run state, the camera noise model under "camera")
    OME/zarr.json         "ome" {"series": ["raw", "sr", ...]}: the collection's images
    raw/                  NGFF 0.5 image, axes t, ap, y, x (see below)
      0/                  uint16 (T, A*P, H, W); chunk = 1 frame, shard = 1 set
    sr/                   NGFF 0.5 image, axes t, y, x (only when an SR shape is given)
      0/                  float32 (T, H2, W2); sr/0[t] is the SR image of raw set t (NaN if none)
    tables/frames/        one 1-D array per column, one row per stored raw frame
    tables/sr/            one 1-D array per column, one row per raw set given to the
                          reconstruction: ``status`` says "reconstructed" (image in sr/0[t])
                          or "skipped" (the live pipeline fell behind; sr/0[t] stays NaN)
    <series>/             a further series store nested in this one (a live run's other
                          modalities), its images also listed in this root's OME/series

The root is a bioformats2raw-style collection (NGFF 0.5 "bioformats2raw.layout"): a reader
opening the store finds its images through ``OME/series`` (paths ``raw``, ``sr``,
``sim9/raw``, ...), and each image is a plain single-level multiscales group that opens on
its own. A protocol's store is a root of the same kind whose series are the stores
``p<position>_c<channel>/`` in it; each series store registers its images with the roots
this process writes (:func:`srlive.storage.ngff.register_in_parents`). Layout-1 stores
(root ``"ome": {"version": "0.5"}`` only, no ``OME/``, no camera record) still open.

NGFF 0.5 allows at most one axis besides time and space ("MAY contain one additional entry
of type channel or a null / custom type"), so the SIM angle and phase share one custom axis
``ap`` (type ``"angle_phase"``) with index ``a * n_phases + p``. :meth:`StoreReader.read_set`
returns the (A, P, H, W) view.

Crash safety: tables and metadata go through zarr-python, whose local store replaces every
file atomically (temporary file + rename); the image arrays' chunks go through zarrs' Rust
codec pipeline (:func:`srlive.storage.files.image_pipeline`), each file written once, in
place. :meth:`AcquisitionStore.flush` writes the buffered table rows, optionally fsyncs every
file written since the last flush, and only then records ``frames_flushed`` in the root
attributes, so after a crash (even SIGKILL) every frame below ``frames_flushed`` is intact
(a set cut short by the crash lies above it, and a resumed store writes it again).

The code lives in small modules: :mod:`~srlive.storage.ngff` (NGFF metadata through
yaozarrs' models), :mod:`~srlive.storage.noise` (the camera record),
:mod:`~srlive.storage.tables` (the one table codec), :mod:`~srlive.storage.store`,
:mod:`~srlive.storage.writes`, :mod:`~srlive.storage.durable` (the writer),
:mod:`~srlive.storage.chunks` (distributed workers) and :mod:`~srlive.storage.reader`.
"""

from __future__ import annotations

from srlive.storage.chunks import write_set_chunks
from srlive.storage.files import (
    StoreDamagedError,
    StoreWriteError,
    frame_crc,
    jsonable,
)
from srlive.storage.ngff import AP_AXIS, NGFF_VERSION
from srlive.storage.noise import NoiseRecord
from srlive.storage.reader import StoreReader, find_series, open_store
from srlive.storage.store import LAYOUT_VERSION, AcquisitionStore
from srlive.storage.tables import (
    DEFAULT_SR_EXTRAS,
    FRAME_COLUMN_DEFAULTS,
    SR_COLUMN_DEFAULTS,
    SR_STATUSES,
    TABLE_CHUNK,
)

_jsonable = jsonable  # the name srlive.optimize.store imported before the split

__all__ = [
    "AP_AXIS",
    "DEFAULT_SR_EXTRAS",
    "FRAME_COLUMN_DEFAULTS",
    "LAYOUT_VERSION",
    "NGFF_VERSION",
    "SR_COLUMN_DEFAULTS",
    "SR_STATUSES",
    "TABLE_CHUNK",
    "AcquisitionStore",
    "NoiseRecord",
    "StoreDamagedError",
    "StoreReader",
    "StoreWriteError",
    "find_series",
    "frame_crc",
    "open_store",
    "write_set_chunks",
]
