"""SR images as an OME-TIFF (``--out X.tif``), written atomically, with a JSON sidecar.

The stack is ``TYX`` float32 with ``PhysicalSizeX/Y`` in µm. The reconstruction summary
(optics, per-set pattern) goes beside it as ``X.srlive.json``. Both are written to a
temporary file in the same directory and moved into place with :func:`os.replace`, so a
failed run leaves whatever was there before. An existing output is replaced only with
``overwrite`` and only when it is a TIFF file (the sidecar: a regular file).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from srlive.storage.guard import StoreGuardError, check_output

TIFF_OUTPUT_SUFFIXES = (".tif", ".tiff")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_BIGTIFF_BYTES = 2**32 - 2**25


def is_tiff_output(path: str | Path) -> bool:
    """True when ``--out`` names a TIFF file rather than a store."""
    return Path(path).suffix.lower() in TIFF_OUTPUT_SUFFIXES


def sidecar_path(path: str | Path) -> Path:
    """The summary JSON written beside a TIFF output: ``X.tif`` -> ``X.srlive.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".srlive.json")


def _is_tiff_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) in _TIFF_MAGIC
    except OSError:
        return False


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_file_output(
    path: Path, overwrite: bool, inputs: Sequence[str | Path], tiff: bool = False
) -> None:
    """Refuse a file output that exists (without ``overwrite``), is no regular file (or no
    TIFF, for ``tiff``), overlaps an input or cannot be written."""
    if not (path.is_symlink() or path.exists()):
        check_output(path, overwrite=False, inputs=list(inputs))  # inputs, parent writable
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite to replace it)")
    what = "TIFF file" if tiff else "regular file"
    if path.is_symlink() or not path.is_file() or (tiff and not _is_tiff_file(path)):
        raise StoreGuardError(
            f"{path} is not a {what}; --overwrite replaces only {what}s here, refusing to touch it"
        )
    for source in inputs:
        if _overlaps(path.resolve(), Path(source).resolve()):
            raise StoreGuardError(
                f"output {path} overlaps the input {source}: writing it would destroy the "
                "input; choose another --out"
            )
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreGuardError(f"cannot replace {path}: {path.parent} is not writable")


def check_tiff_output(
    path: str | Path, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> None:
    """Refuse a TIFF output (or its sidecar) that may not be written, before any work."""
    path = Path(path)
    check_file_output(path, overwrite, inputs, tiff=True)
    check_file_output(sidecar_path(path), overwrite, [*inputs, path])


def atomic_write(path: Path, write: Any) -> None:
    """Run ``write(tmp_path)`` and move the result onto ``path`` (removed on failure)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_sr_tiff(
    path: str | Path,
    images: Iterable[np.ndarray],
    n_images: int,
    shape: tuple[int, int],
    pixel_nm: float,
) -> None:
    """Write ``n_images`` float32 images of ``shape`` as one OME-TIFF TYX stack (atomic)."""
    import tifffile

    path = Path(path)
    um = pixel_nm / 1000.0
    metadata = {
        "axes": "TYX",
        "PhysicalSizeX": um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": um,
        "PhysicalSizeYUnit": "µm",
    }
    full = (int(n_images), int(shape[0]), int(shape[1]))
    big = int(np.prod(full)) * 4 > _BIGTIFF_BYTES

    def write(tmp: Path) -> None:
        pages = (np.asarray(image, np.float32) for image in images)
        with tifffile.TiffWriter(tmp, ome=True, bigtiff=big) as tif:
            tif.write(pages, shape=full, dtype=np.float32, metadata=metadata)

    atomic_write(path, write)


def write_json(path: str | Path, summary: dict[str, Any]) -> None:
    """Write ``summary`` as indented JSON (atomic)."""
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))
