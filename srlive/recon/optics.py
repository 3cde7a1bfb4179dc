"""What a SIM reconstruction must know about a microscope, without a Micro-Manager config.

:class:`SIMOptics` is a small validated, frozen pydantic model: pixel size at the sample,
NA, emission wavelength, the raw-frame layout (angles × phases and their order in the file),
the camera offset/gain and an optional prior on the fringes. It is built from a hardware
profile, a YAML/JSON file or keyword arguments; every invalid value raises a ``ValueError``
whose message is one line naming the source and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from srlive.profiles import Profile

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

OPTICS_SUFFIXES = (".yaml", ".yml", ".json")


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line ``"<source>: <loc>: <msg>; ..."`` for every error pydantic found."""
    parts = []
    for item in err.errors():
        msg = str(item["msg"]).removeprefix("Value error, ").replace("\n", " ")
        loc = ".".join(str(p) for p in item["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return f"{source}: " + "; ".join(parts)


class NominalPattern(BaseModel):
    """An optional prior on the fringes: their period and, per angle, their direction.

    An angle is ``atan2(k_row, k_col)`` of the fringe wavevector in degrees, taken modulo
    180°, listed in the order the angles appear in the frames.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    period_nm: PositiveFloat
    angles_deg: Annotated[tuple[FiniteFloat, ...], Field(min_length=1)] | None = None

    @field_validator("angles_deg")
    @classmethod
    def _modulo_180(cls, angles: tuple[float, ...] | None) -> tuple[float, ...] | None:
        return None if angles is None else tuple(float(a) % 180.0 for a in angles)


class SIMOptics(BaseModel):
    """The optics and raw-frame layout of a 2D-SIM acquisition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pixel_nm: PositiveFloat = Field(description="camera pixel size at the sample (nm)")
    na: Annotated[float, Field(gt=0, le=1.7, allow_inf_nan=False)]
    emission_nm: PositiveFloat
    immersion_index: Annotated[float, Field(ge=1.0, le=2.0, allow_inf_nan=False)] = 1.518
    n_angles: Annotated[int, Field(ge=1)] = 3
    n_phases: Annotated[int, Field(ge=3)] = 3
    order: Literal["angle-major", "phase-major"] = Field(
        default="angle-major",
        description="angle-major: a0p0, a0p1, …, a1p0, …; phase-major: p0a0, p0a1, …, p1a0, …",
    )
    offset_adu: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 100.0
    gain_e_per_adu: PositiveFloat = 1.0
    nominal: NominalPattern | None = None
    wiener: PositiveFloat | None = Field(
        default=None, description="Wiener parameter; None: chosen from the data's noise"
    )

    @model_validator(mode="after")
    def _consistent(self) -> SIMOptics:
        if self.na > self.immersion_index:
            raise ValueError(f"na {self.na:g} exceeds immersion_index {self.immersion_index:g}")
        if self.nominal is not None:
            angles = self.nominal.angles_deg
            if angles is not None and len(angles) != self.n_angles:
                raise ValueError(
                    f"nominal.angles_deg has {len(angles)} angle(s) but n_angles is {self.n_angles}"
                )
            cutoff_nm = self.emission_nm / (2.0 * self.na)
            if self.nominal.period_nm <= cutoff_nm:
                raise ValueError(
                    f"nominal.period_nm {self.nominal.period_nm:g} is at or below the "
                    f"detection cutoff λ/(2·NA) = {cutoff_nm:.1f} nm: such fringes cannot "
                    "be seen"
                )
        return self

    @property
    def frames_per_set(self) -> int:
        """Raw frames in one SIM set (angles × phases)."""
        return self.n_angles * self.n_phases

    def to_angle_major(self, frames: np.ndarray) -> np.ndarray:
        """Frames ``(n_frames, H, W)`` in the file's order, reordered angle-major per set.

        ``n_frames`` must be a whole number of sets; angle-major input is returned as is.
        """
        frames = np.asarray(frames)
        if frames.ndim != 3:
            raise ValueError(f"expected frames shaped (n_frames, H, W), got shape {frames.shape}")
        n, size = frames.shape[0], self.frames_per_set
        if n == 0 or n % size:
            raise ValueError(
                f"{n} frame(s) are not a whole number of SIM sets of {size} "
                f"({self.n_angles} angles × {self.n_phases} phases)"
            )
        if self.order == "angle-major":
            return frames
        sets = frames.reshape(n // size, self.n_phases, self.n_angles, *frames.shape[1:])
        return sets.transpose(0, 2, 1, 3, 4).reshape(frames.shape)

    @classmethod
    def from_profile(cls, profile: Profile, laser_line: int | None = None) -> SIMOptics:
        """The optics a hardware profile describes, for one laser line (default: its default)."""
        line = profile.defaults.laser_line if laser_line is None else laser_line
        source = f"profile {profile.name!r}"
        if line not in profile.optics.emission_nm:
            known = ", ".join(str(v) for v in sorted(profile.optics.emission_nm))
            raise ValueError(f"{source}: no emission wavelength for laser line {line} ({known})")
        period = profile.sim.period_nm.get(line)
        data: dict[str, Any] = {
            "pixel_nm": profile.optics.pixel_nm,
            "na": profile.optics.na,
            "emission_nm": profile.optics.emission_nm[line],
            "immersion_index": profile.optics.n_immersion,
            "n_angles": len(profile.sim.angles_deg),
            "n_phases": profile.sim.n_phases,
            "order": "angle-major",
            "nominal": None
            if period is None
            else {"period_nm": period, "angles_deg": tuple(profile.sim.angles_deg)},
        }
        if profile.camera.offset_adu is not None:
            data["offset_adu"] = profile.camera.offset_adu
        if profile.camera.e_per_adu is not None:
            data["gain_e_per_adu"] = profile.camera.e_per_adu
        return _validated(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> SIMOptics:
        """Optics from a YAML or JSON mapping of this model's fields."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"optics file not found: {path}")
        if path.suffix.lower() not in OPTICS_SUFFIXES:
            raise ValueError(
                f"{path}: unknown optics file type {path.suffix!r} (use .yaml, .yml or .json)"
            )
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the optics file: {exc}") from None
        try:
            parse = json.loads if path.suffix.lower() == ".json" else yaml.safe_load
            data = parse(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno} invalid JSON: {exc.msg}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).replace("\n", " ")
            raise ValueError(f"{path}:{where} invalid YAML: {problem}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: an optics file must hold a mapping of fields")
        return _validated(data, str(path))

    def with_overrides(self, **given: Any) -> SIMOptics:
        """A copy with the given fields replaced; ``None`` values (flags not given) are ignored.

        ``period_nm`` and ``angles_deg`` set the nominal pattern's fields.
        """
        given = {key: value for key, value in given.items() if value is not None}
        if not given:
            return self
        nominal_keys = {key: given.pop(key) for key in ("period_nm", "angles_deg") if key in given}
        data = self.model_dump()
        data.update(given)
        if nominal_keys:
            base = data.get("nominal")
            if isinstance(base, NominalPattern):
                base = base.model_dump()
            data["nominal"] = {**(base or {}), **nominal_keys}
        return _validated(data, "optics overrides")


def _validated(data: dict[str, Any], source: str) -> SIMOptics:
    try:
        return SIMOptics.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, source)) from None
