"""Localisations in the files other SMLM software opens.

* ThunderSTORM CSV: the columns ThunderSTORM's export writes (``"id","frame","x [nm]",...``),
  frames counted from 1, coordinates in nm from the image's corner (ThunderSTORM's own
  convention: it and srlive need no offset). 3D tables add ``z [nm]``, ``sigma1/2 [nm]``
  and ``uncertainty_z [nm]``, as ThunderSTORM's astigmatic export.
* Picasso HDF5: one compound dataset ``locs`` with Picasso's field names and types (frame
  uint32 from 0; x, y float32 in camera pixels with pixel ``k``'s centre at ``k``: srlive's
  nm minus half a pixel; photons, sx, sy, bg, lpx, lpy, ellipticity, and net_gradient, which
  holds srlive's detection significance (Picasso's own net gradient is another score of the
  same role); z and lpz in nm for 3D), and the metadata Picasso reads (Width, Height,
  Frames, Pixelsize, ...) as a YAML list of documents beside it (``X.yaml`` for ``X.hdf5``),
  written with h5py and PyYAML, not Picasso.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from srlive.recon.smlm.table import Localizations

EXPORT_SUFFIXES = {".csv": "thunderstorm", ".hdf5": "picasso", ".h5": "picasso"}
THUNDERSTORM_2D = (
    "id",
    "frame",
    "x [nm]",
    "y [nm]",
    "sigma [nm]",
    "intensity [photon]",
    "offset [photon]",
    "bkgstd [photon]",
    "uncertainty_xy [nm]",
)
THUNDERSTORM_3D = (
    "id",
    "frame",
    "x [nm]",
    "y [nm]",
    "z [nm]",
    "sigma1 [nm]",
    "sigma2 [nm]",
    "intensity [photon]",
    "offset [photon]",
    "bkgstd [photon]",
    "uncertainty_xy [nm]",
    "uncertainty_z [nm]",
)


def export_format(path: str | Path) -> str | None:
    """``thunderstorm`` (.csv), ``picasso`` (.hdf5/.h5) or None for other paths."""
    return EXPORT_SUFFIXES.get(Path(path).suffix.lower())


def thunderstorm_columns(locs: Localizations) -> dict[str, np.ndarray]:
    """The table as ThunderSTORM's columns (in its order)."""
    n = len(locs)
    columns = {
        "id": np.arange(1, n + 1),
        "frame": locs["frame"] + 1,
        "x [nm]": locs["x_nm"],
        "y [nm]": locs["y_nm"],
        "z [nm]": locs["z_nm"],
        "sigma [nm]": np.sqrt(locs["sigma_x_nm"].astype(np.float64) * locs["sigma_y_nm"]),
        "sigma1 [nm]": locs["sigma_x_nm"],
        "sigma2 [nm]": locs["sigma_y_nm"],
        "intensity [photon]": locs["photons"],
        "offset [photon]": locs["background"],
        "bkgstd [photon]": np.sqrt(np.clip(locs["background"], 0, None)),
        "uncertainty_xy [nm]": locs["uncertainty_nm"],
        "uncertainty_z [nm]": locs["uncertainty_z_nm"],
    }
    names = THUNDERSTORM_3D if locs.has_z else THUNDERSTORM_2D
    return {name: columns[name] for name in names}


def write_thunderstorm_csv(path: str | Path, locs: Localizations) -> Path:
    """Write ``locs`` as a ThunderSTORM CSV; returns the path."""
    path = Path(path)
    columns = thunderstorm_columns(locs)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(list(columns))
        rows = zip(*(_as_text(name, values) for name, values in columns.items()), strict=True)
        csv.writer(handle, quoting=csv.QUOTE_NONE).writerows(rows)
    return path


def _as_text(name: str, values: np.ndarray) -> list[str]:
    if name in ("id", "frame"):
        return [str(int(v)) for v in values]
    return [f"{v:.4f}" if np.isfinite(v) else "NaN" for v in np.asarray(values, np.float64)]


def picasso_records(locs: Localizations) -> np.ndarray:
    """The table as Picasso's ``locs`` record array."""
    p = locs.pixel_nm
    fields: list[tuple[str, Any, np.ndarray]] = [
        ("frame", np.uint32, locs["frame"]),
        ("x", np.float32, locs["x_nm"] / p - 0.5),
        ("y", np.float32, locs["y_nm"] / p - 0.5),
        ("photons", np.float32, locs["photons"]),
        ("sx", np.float32, locs["sigma_x_nm"] / p),
        ("sy", np.float32, locs["sigma_y_nm"] / p),
        ("bg", np.float32, locs["background"]),
        ("lpx", np.float32, locs["uncertainty_x_nm"] / p),
        ("lpy", np.float32, locs["uncertainty_y_nm"] / p),
        ("ellipticity", np.float32, _ellipticity(locs)),
        ("net_gradient", np.float32, np.nan_to_num(locs["significance"], nan=0.0)),
    ]
    if locs.has_z:
        fields += [("z", np.float32, locs["z_nm"]), ("lpz", np.float32, locs["uncertainty_z_nm"])]
    out = np.empty(len(locs), dtype=[(name, dtype) for name, dtype, _ in fields])
    for name, _, values in fields:
        out[name] = values
    return out


def _ellipticity(locs: Localizations) -> np.ndarray:
    """Picasso's ellipticity: (max(sx, sy) − min(sx, sy)) / max(sx, sy)."""
    sx, sy = locs["sigma_x_nm"].astype(np.float64), locs["sigma_y_nm"].astype(np.float64)
    hi = np.maximum(sx, sy)
    return np.where(hi > 0, (hi - np.minimum(sx, sy)) / np.where(hi > 0, hi, 1), 0.0)


def picasso_info(locs: Localizations, **extra: Any) -> list[dict[str, Any]]:
    """The metadata documents Picasso reads with a ``locs`` file."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        generator = f"srlive {version('srlive')}"
    except PackageNotFoundError:  # pragma: no cover
        generator = "srlive (uninstalled)"
    movie = {
        "Width": int(locs.frame_shape[1]),
        "Height": int(locs.frame_shape[0]),
        "Frames": int(locs.n_frames),
        "Data Type": "uint16",
        "Byte Order": "<",
    }
    localize = {
        "Generated by": f"{generator} localize",
        "Pixelsize": float(locs.pixel_nm),
        **{k: v for k, v in extra.items() if v is not None},
    }
    return [movie, localize]


def write_picasso_hdf5(path: str | Path, locs: Localizations, **info: Any) -> tuple[Path, Path]:
    """Write ``locs`` as Picasso's HDF5 and its YAML; returns both paths. ``info``: more
    metadata for the YAML (e.g. ``{"Fit method": ...}``)."""
    import h5py

    path = Path(path)
    records = picasso_records(locs)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("locs", data=records)
    info_path = path.with_suffix(".yaml")
    with info_path.open("w") as handle:
        yaml.safe_dump_all(picasso_info(locs, **info), handle, default_flow_style=False)
    return path, info_path


def write_export(path: str | Path, locs: Localizations, **info: Any) -> list[Path]:
    """Write ``locs`` in the format ``path``'s suffix names; returns the files written."""
    kind = export_format(path)
    if kind == "thunderstorm":
        return [write_thunderstorm_csv(path, locs)]
    if kind == "picasso":
        return list(write_picasso_hdf5(path, locs, **info))
    known = ", ".join(EXPORT_SUFFIXES)
    raise ValueError(f"{path}: unknown localisation export (use {known})")
