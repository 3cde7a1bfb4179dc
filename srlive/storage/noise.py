"""The camera's noise model as a store records it (root ``srlive.camera``).

Offline reconstruction subtracts the offset the data were taken with, not a default: every
store written since layout 2 records it with the camera's gain and read noise, and where
the values came from (the camera, the profile, a flag). Older stores have none; readers
fall back to the profile and say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CAMERA_KEY", "NoiseRecord"]

CAMERA_KEY = "camera"  # the key in a store's root srlive attributes


def _value(data: Mapping[str, Any], key: str, required: bool) -> float | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"camera noise model: {key} is missing")
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"camera noise model: {key} {value!r} is not a number") from None
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"camera noise model: {key} {value!r} must be finite and >= 0")
    return out


@dataclass(frozen=True)
class NoiseRecord:
    """Offset (ADU), gain (e⁻/ADU) and read noise (e⁻ rms) of the camera, and their origin."""

    offset_adu: float
    e_per_adu: float | None = None
    read_noise_e: float | None = None
    source: str = ""  # e.g. "camera", "profile", "--offset-adu", "store <path>"

    def __post_init__(self) -> None:
        data = {k: getattr(self, k) for k in ("offset_adu", "e_per_adu", "read_noise_e")}
        _value(data, "offset_adu", True)
        _value(data, "e_per_adu", False)
        _value(data, "read_noise_e", False)
        if self.e_per_adu == 0:
            raise ValueError("camera noise model: e_per_adu must be > 0")

    def to_attrs(self) -> dict[str, Any]:
        """The JSON the store keeps under ``srlive.camera``."""
        return {
            "offset_adu": float(self.offset_adu),
            "e_per_adu": self.e_per_adu,
            "read_noise_e": self.read_noise_e,
            "source": self.source,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> NoiseRecord | None:
        """The record in a store's root ``srlive`` attributes (None: an older store)."""
        data = attrs.get(CAMERA_KEY)
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ValueError(f"camera noise model: expected a mapping, got {data!r}")
        return cls(
            offset_adu=float(_value(data, "offset_adu", True) or 0.0),
            e_per_adu=_value(data, "e_per_adu", False),
            read_noise_e=_value(data, "read_noise_e", False),
            source=str(data.get("source", "")),
        )

    def describe(self) -> str:
        """``offset 100 ADU, gain 0.46 e-/ADU, read noise 1.6 e-`` (what is known)."""
        parts = [f"offset {self.offset_adu:g} ADU"]
        if self.e_per_adu is not None:
            parts.append(f"gain {self.e_per_adu:g} e-/ADU")
        if self.read_noise_e is not None:
            parts.append(f"read noise {self.read_noise_e:g} e-")
        return ", ".join(parts)
