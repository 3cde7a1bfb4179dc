"""A table of localisations: one numpy column per quantity, with the frame geometry.

Coordinates are nm from the top-left corner of the frame (camera pixel ``k`` covers
``[k·p, (k+1)·p)``, as in ThunderSTORM), ``frame`` counts from the first frame of the
acquisition. ``photons`` are detected photons (photoelectrons) in the fitted PSF model,
``background`` photoelectrons per pixel, the ``uncertainty`` columns Cramér-Rao bounds
(standard deviations) at the fitted parameters; ``uncertainty_nm`` is the lateral one,
``sqrt((σx² + σy²)/2)``. ``z_nm`` is NaN for 2D localisations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# column -> dtype, in the order tables and exports list them
LOCALIZATION_COLUMNS: dict[str, str] = {
    "frame": "int64",
    "x_nm": "float64",
    "y_nm": "float64",
    "z_nm": "float64",
    "photons": "float32",
    "background": "float32",
    "uncertainty_nm": "float32",
    "uncertainty_x_nm": "float32",
    "uncertainty_y_nm": "float32",
    "uncertainty_z_nm": "float32",
    "sigma_x_nm": "float32",
    "sigma_y_nm": "float32",
    "significance": "float32",  # detection: the DoG peak in noise SDs
    "log_likelihood_ratio": "float32",  # 2·(L_saturated − L_fit) per box: goodness of fit
    "iterations": "int16",
}


@dataclass(frozen=True)
class Localizations:
    """Localisations of ``n_frames`` frames of ``frame_shape`` camera pixels of ``pixel_nm``."""

    columns: dict[str, np.ndarray]
    pixel_nm: float
    frame_shape: tuple[int, int]
    n_frames: int

    def __post_init__(self) -> None:
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: {sorted(lengths)}")
        for name in ("frame", "x_nm", "y_nm"):
            if name not in self.columns:
                raise ValueError(f"a localisation table needs a {name!r} column")

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Sequence[float] | np.ndarray],
        pixel_nm: float,
        frame_shape: tuple[int, int],
        n_frames: int,
    ) -> Localizations:
        """A table from any columns; standard columns missing are NaN (-1 for integers)."""
        given = {k: np.asarray(v) for k, v in columns.items()}
        n = len(next(iter(given.values()))) if given else 0
        out: dict[str, np.ndarray] = {}
        for name, dtype in LOCALIZATION_COLUMNS.items():
            if name in given:
                out[name] = given[name].astype(dtype)
            else:
                fill = -1 if np.dtype(dtype).kind == "i" else np.nan
                out[name] = np.full(n, fill, dtype)
        return cls(out, float(pixel_nm), (int(frame_shape[0]), int(frame_shape[1])), int(n_frames))

    @classmethod
    def empty(cls, pixel_nm: float, frame_shape: tuple[int, int], n_frames: int) -> Localizations:
        return cls.from_columns(
            {"frame": [], "x_nm": [], "y_nm": []}, pixel_nm, frame_shape, n_frames
        )

    def __len__(self) -> int:
        return len(self.columns["frame"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def has_z(self) -> bool:
        z = self.columns.get("z_nm")
        return z is not None and len(z) > 0 and bool(np.isfinite(z).any())

    @property
    def field_nm(self) -> tuple[float, float]:
        return (self.frame_shape[0] * self.pixel_nm, self.frame_shape[1] * self.pixel_nm)

    def select(self, keep: np.ndarray) -> Localizations:
        """The rows where ``keep`` (a mask or indices)."""
        return Localizations(
            {k: v[keep] for k, v in self.columns.items()},
            self.pixel_nm,
            self.frame_shape,
            self.n_frames,
        )

    def replace(self, **columns: np.ndarray) -> Localizations:
        """A copy with some columns replaced."""
        return Localizations(
            {**self.columns, **columns}, self.pixel_nm, self.frame_shape, self.n_frames
        )

    def in_frames(self, first: int, stop: int) -> Localizations:
        """The rows with ``first <= frame < stop``."""
        frame = self.columns["frame"]
        return self.select((frame >= first) & (frame < stop))


def concat(parts: Sequence[Localizations]) -> Localizations:
    """Tables of consecutive frame ranges of one acquisition, one after another."""
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    names = list(first.columns)
    columns = {k: np.concatenate([p.columns[k] for p in parts]) for k in names}
    n_frames = max(p.n_frames for p in parts)
    return Localizations(columns, first.pixel_nm, first.frame_shape, n_frames)
