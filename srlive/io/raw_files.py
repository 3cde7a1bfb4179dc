"""Raw SIM frames from the files labs have: TIFF (plain, ImageJ, OME), MRC and ``.npy``.

:func:`read_raw_frames` returns every frame in file order as one ``(N, H, W)`` array (leading
axes such as T/Z/C flattened, a single 2-D image as N = 1), memory-mapped where the file
allows it (uncompressed, contiguous, native byte order; else read once into memory), with
the pixel size when the file's metadata gives one. :func:`group_sets` cuts the frames into
SIM sets. Bad files raise a one-line :class:`RawFileError` (a ``ValueError``;
``FileNotFoundError`` for a missing file) that names the file.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff", ".btf")
MRC_SUFFIXES = (".mrc", ".mrcs", ".st", ".ali", ".map", ".dv")
NPY_SUFFIXES = (".npy",)

# nanometres per unit, for the length units ImageJ and OME write
_NM_PER_UNIT = {
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "um": 1e3,
    "µm": 1e3,  # micro sign
    "μm": 1e3,  # greek mu
    "\\u00b5m": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "a": 0.1,
    "å": 0.1,
    "angstrom": 0.1,
    "pm": 1e-3,
}
_NAN_CHECK_BYTES = 64 * 2**20
# words in tifffile's error log that mean pages or their data are missing
_TIFF_DAMAGE = (
    "page offset",
    "offset to page",
    "next page",
    "corrupted",
    "circular reference",
    "failed to reshape",
    "ByteCounts",
    "StripOffsets",
    "data offset",
)


class RawFileError(ValueError):
    """A raw frame file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class RawFrames:
    """Frames ``(N, H, W)`` in file order, where they came from and what the file says."""

    frames: np.ndarray
    source: str
    format: str
    pixel_nm: float | None
    axes: str

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def read_raw_frames(path: str | Path) -> RawFrames:
    """Read every raw frame of a TIFF, OME-TIFF, ImageJ hyperstack, MRC or ``.npy`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"raw frame file not found: {path}")
    if not path.is_file():
        raise RawFileError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        data, fmt, pixel_nm, axes = _read_tiff(path)
    elif suffix in MRC_SUFFIXES:
        data, fmt, pixel_nm, axes = _read_mrc(path)
    elif suffix in NPY_SUFFIXES:
        data, fmt, pixel_nm, axes = _read_npy(path)
    else:
        known = ", ".join(TIFF_SUFFIXES + MRC_SUFFIXES + NPY_SUFFIXES)
        raise RawFileError(f"{path}: unknown raw file type {path.suffix or '(none)'!r} ({known})")
    frames = _as_frames(data, axes, path)
    return RawFrames(frames=frames, source=str(path), format=fmt, pixel_nm=pixel_nm, axes=axes)


def group_sets(frames: np.ndarray, frames_per_set: int, source: str | None = None) -> np.ndarray:
    """Frames ``(N, H, W)`` as a view ``(n_sets, frames_per_set, H, W)``."""
    where = f"{source}: " if source else ""
    if frames_per_set < 1:
        raise RawFileError(f"{where}the set size must be at least 1, got {frames_per_set}")
    if frames.ndim != 3:
        raise RawFileError(f"{where}expected frames shaped (N, H, W), got shape {frames.shape}")
    n = frames.shape[0]
    if n == 0 or n % frames_per_set:
        raise RawFileError(
            f"{where}{n} frame(s) are not a whole number of sets of {frames_per_set} "
            f"({n % frames_per_set} left over)"
        )
    return frames.reshape(n // frames_per_set, frames_per_set, *frames.shape[1:])


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _nm(value: float, unit: str | None) -> float | None:
    """A length in nm, or None for an unknown unit or a value that is no size."""
    factor = _NM_PER_UNIT.get((unit or "").strip().lower())
    if factor is None or not math.isfinite(value) or value <= 0:
        return None
    return value * factor


def _read_tiff(path: Path) -> tuple[np.ndarray, str, float | None, str]:
    import tifffile

    try:
        with _TiffLog(path) as log, tifffile.TiffFile(path) as tif:
            n_series = len(tif.series)
            log.check()
            if n_series == 0:
                raise RawFileError(f"{path}: the TIFF holds no images")
            if n_series > 1:
                raise RawFileError(
                    f"{path}: the TIFF holds {n_series} image series (positions or "
                    "differently sized pages); save the raw frames as one series"
                )
            series = tif.series[0]
            axes = series.axes
            if "S" in axes:
                raise RawFileError(
                    f"{path}: the TIFF has colour/sample channels (axes {axes}); raw SIM "
                    "frames must be grayscale"
                )
            if tif.is_ome:
                fmt, pixel_nm = "ome-tiff", _ome_pixel_nm(tif.ome_metadata)
            elif tif.is_imagej:
                fmt = "imagej-tiff"
                pixel_nm = _imagej_pixel_nm(tif.imagej_metadata, series.keyframe)
            else:
                fmt, pixel_nm = "tiff", None
            contiguous = series.dataoffset is not None
            data = None if contiguous else series.asarray()
            log.check()
        if contiguous:  # uncompressed and contiguous: map it instead of reading it
            data = tifffile.memmap(path, series=0, mode="r")
    except RawFileError:
        raise
    except Exception as exc:  # whatever tifffile raises on a damaged file
        raise RawFileError(f"{path}: cannot read the TIFF: {_one_line(exc)}") from None
    if data is None:  # pragma: no cover - one of the branches above read it
        raise RawFileError(f"{path}: no image data")
    return data, fmt, pixel_nm, axes


class _TiffLog(logging.Handler):
    """Holds back tifffile's log while a file is parsed; its damage reports become errors.

    tifffile logs a broken page chain or page data and carries on with the pages it found,
    which would silently drop frames. Other records are passed on once the file is read.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.records: list[logging.LogRecord] = []
        self._log = logging.getLogger("tifffile")
        self._propagate = self._log.propagate

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _TiffLog:
        self._log.addHandler(self)
        self._log.propagate = False
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._log.removeHandler(self)
        self._log.propagate = self._propagate
        if exc_type is None:
            for record in self.records:
                self._log.handle(record)

    def check(self) -> None:
        for record in self.records:
            message = record.getMessage()
            if record.levelno >= logging.ERROR and any(w in message for w in _TIFF_DAMAGE):
                detail = " ".join(re.sub(r"^<[^>]*>\s*", "", message).split())
                raise RawFileError(f"{self.path}: damaged or truncated TIFF: {detail}")


def _ome_pixel_nm(xml: str | None) -> float | None:
    """PhysicalSizeX of the first image (default unit µm) in nm."""
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    try:
        size = float(pixels.attrib["PhysicalSizeX"])
    except ValueError:
        return None
    return _nm(size, pixels.attrib.get("PhysicalSizeXUnit", "µm"))


def _imagej_pixel_nm(metadata: dict | None, page: object) -> float | None:
    """ImageJ's calibration: XResolution (pixels per unit) and the ``unit`` it names."""
    unit = (metadata or {}).get("unit")
    tag = page.tags.get("XResolution") if hasattr(page, "tags") else None
    if unit is None or tag is None:
        return None
    try:
        numerator, denominator = (float(v) for v in tag.value)
    except (TypeError, ValueError):  # an odd tag: no calibration rather than no file
        return None
    if numerator <= 0 or denominator <= 0:
        return None
    return _nm(denominator / numerator, str(unit))


def _read_mrc(path: Path) -> tuple[np.ndarray, str, float | None, str]:
    import mrcfile

    try:
        mrc = mrcfile.mmap(path, mode="r")
    except Exception as exc:  # whatever mrcfile raises on a damaged or non-MRC file
        hint = (
            " (DeltaVision/Priism .dv headers are not MRC; export the file as TIFF)"
            if path.suffix.lower() == ".dv"
            else ""
        )
        raise RawFileError(f"{path}: cannot read as MRC: {_one_line(exc)}{hint}") from None
    data = mrc.data  # the memory map stays valid after the file object is closed
    size_a = float(mrc.voxel_size.x)
    mrc.close()
    if data is None:
        raise RawFileError(f"{path}: the MRC file has no data block")
    pixel_nm = size_a / 10.0 if math.isfinite(size_a) and size_a > 0 else None
    axes = {2: "YX", 3: "ZYX"}.get(data.ndim, "Q" * (data.ndim - 3) + "ZYX")
    return data, "mrc", pixel_nm, axes


def _read_npy(path: Path) -> tuple[np.ndarray, str, float | None, str]:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # whatever numpy raises on a damaged or pickled file
        raise RawFileError(f"{path}: cannot read as .npy: {_one_line(exc)}") from None
    if not isinstance(data, np.ndarray):
        raise RawFileError(f"{path}: not a single .npy array")
    axes = "Q" * max(data.ndim - 2, 0) + "YX"[-data.ndim :] if data.ndim else ""
    return data, "npy", None, axes


def _as_frames(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Check the pixels and flatten every leading axis into frames, in file order."""
    kind = data.dtype.kind
    if kind == "c":
        raise RawFileError(f"{path}: complex pixels ({data.dtype}) are not raw camera frames")
    if kind not in "iuf":
        raise RawFileError(f"{path}: pixels of type {data.dtype} are not numeric")
    if data.ndim < 2:
        raise RawFileError(f"{path}: expected images, got an array of shape {data.shape}")
    if data.size == 0:
        raise RawFileError(f"{path}: holds no pixels (shape {data.shape})")
    frames = data.reshape(-1, *data.shape[-2:])
    if kind == "f":
        step = max(1, _NAN_CHECK_BYTES // max(1, frames[0].nbytes))
        for start in range(0, frames.shape[0], step):
            if not np.isfinite(frames[start : start + step]).all():
                raise RawFileError(f"{path}: holds NaN or infinite pixels (axes {axes})")
    if not frames.dtype.isnative:  # e.g. big-endian TIFF: one read into native order
        frames = frames.astype(frames.dtype.newbyteorder("="))
    return frames
