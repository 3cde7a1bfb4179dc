"""Hardware profiles: what the Micro-Manager core does not know about a microscope.

A profile maps roles (camera, lasers by wavelength, SLM, stages) to Micro-Manager device
labels and holds the optics, the SIM pattern set and the hard safety limits. Profiles are
YAML files validated with pydantic; a broken file raises :class:`ProfileError` whose message
names the file and the offending field on one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILE_DIR = Path(__file__).resolve().parent.parent / "hardware_profiles"
DEFAULT_PROFILE = "sim_default"

# every number in a profile is finite: an infinite or NaN limit is no limit
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ProfileError(ValueError):
    """A profile or its Micro-Manager config is missing or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Roles(_Strict):
    """Micro-Manager device labels for each role."""

    camera: str
    lasers: dict[int, str] = Field(description="laser line (nm) -> shutter-like laser device")
    slm: str | None = None
    z_stage: str | None = None
    xy_stage: str | None = None
    simulator_hub: str | None = Field(
        default=None, description="the simulated microscope's hub (owner of the sample)"
    )
    laser_power_property: str = Field(
        default="PowerMW", description="laser device property that sets the power in mW"
    )
    laser_gate_property: str | None = Field(
        default="Gated", description="laser property that gates emission by the camera exposure"
    )

    def labelled(self) -> dict[str, str]:
        """Every role's device label by its field name (``lasers.488``, ``camera``...)."""
        named = {"camera": self.camera}
        named |= {f"lasers.{line}": label for line, label in self.lasers.items()}
        for role in ("slm", "z_stage", "xy_stage", "simulator_hub"):
            if (label := getattr(self, role)) is not None:
                named[role] = label
        return named

    @model_validator(mode="after")
    def _one_device_per_role(self) -> Roles:
        seen: dict[str, str] = {}
        for role, label in self.labelled().items():
            if label in seen:
                raise ValueError(f"device {label!r} is both roles.{seen[label]} and roles.{role}")
            seen[label] = role
        return self


class OpticsSettings(_Strict):
    """Objective, camera and emission wavelengths."""

    na: Annotated[float, Field(gt=0, le=1.7)] = 1.49
    n_immersion: Annotated[float, Field(ge=1.0, le=2.0)] = 1.518
    magnification: PositiveFloat = 100.0
    camera_pixel_um: PositiveFloat = 6.5
    emission_nm: dict[int, PositiveFloat] = Field(
        default_factory=lambda: {488: 510.0, 561: 600.0, 640: 670.0}
    )

    @property
    def pixel_nm(self) -> float:
        """Camera pixel size at the sample plane."""
        return self.camera_pixel_um * 1000.0 / self.magnification

    def emission_for(self, line: int) -> float:
        """Emission wavelength (nm) collected when exciting with ``line``."""
        try:
            return self.emission_nm[line]
        except KeyError:
            raise ProfileError(f"optics.emission_nm has no entry for laser line {line}") from None


class SIMPatternSettings(_Strict):
    """The structured-illumination pattern set and how its SLM images are drawn."""

    slm_pixel_nm_at_sample: PositiveFloat = 65.0
    period_nm: dict[int, PositiveFloat] = Field(
        default_factory=lambda: {488: 195.0, 561: 225.0, 640: 260.0},
        description="fringe period at the sample per laser line",
    )
    angles_deg: list[FiniteFloat] = Field(default_factory=lambda: [0.0, 60.0, 120.0], min_length=1)
    n_phases: Annotated[int, Field(ge=1, le=7)] = 3
    drawing: Literal["binary-grating"] = "binary-grating"
    blank_value: Annotated[int, Field(ge=0, le=255)] = 0

    def grating_period_px(self, line: int) -> float:
        """SLM grating period in SLM pixels for a laser line (fringe = half the grating)."""
        try:
            period = self.period_nm[line]
        except KeyError:
            raise ProfileError(f"sim.period_nm has no entry for laser line {line}") from None
        return 2.0 * period / self.slm_pixel_nm_at_sample

    @property
    def angles_rad(self) -> list[float]:
        return [math.radians(a) for a in self.angles_deg]


class StageTravel(_Strict):
    """Travel of each stage axis in µm, ``[lower, upper]``; none given: that axis cannot move."""

    x: tuple[FiniteFloat, FiniteFloat] | None = None
    y: tuple[FiniteFloat, FiniteFloat] | None = None
    z: tuple[FiniteFloat, FiniteFloat] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> StageTravel:
        for axis in ("x", "y", "z"):
            travel = getattr(self, axis)
            if travel is not None and travel[0] > travel[1]:
                raise ValueError(f"{axis}: the lower end {travel[0]:g} is above the upper end")
        return self


class SafetyLimits(_Strict):
    """Hard limits that no command may exceed."""

    max_power_mw: dict[int, PositiveFloat]
    min_exposure_ms: PositiveFloat = 0.1
    max_exposure_ms: PositiveFloat = 2000.0
    max_dose_mj: PositiveFloat | None = Field(
        default=None, description="light-dose budget per sample (sum of power × time)"
    )
    stage_um: StageTravel = Field(
        default_factory=StageTravel,
        description="stage travel: protocol positions outside it are refused before any move",
    )

    @model_validator(mode="after")
    def _exposure_range(self) -> SafetyLimits:
        if self.min_exposure_ms > self.max_exposure_ms:
            raise ValueError("min_exposure_ms is larger than max_exposure_ms")
        return self


class MicroManagerSettings(_Strict):
    """How srlive reaches Micro-Manager for this microscope."""

    backend: Literal["pymmcore-plus", "pycromanager", "pycromanager-headless"] = "pymmcore-plus"
    app_path: str | None = Field(
        default=None, description="Micro-Manager installation (pycromanager-headless)"
    )
    port: Annotated[int, Field(gt=0, lt=65536)] = 4827


class CameraNoise(_Strict):
    """The camera's noise model, for signal and SNR estimates from raw frames.

    Unset values are read from the camera's ``Offset``, ``Gain`` (e⁻/ADU) and
    ``ReadNoiseE`` properties where it has them, else these defaults (a typical sCMOS).
    """

    offset_adu: NonNegativeFloat | None = None
    e_per_adu: PositiveFloat | None = None
    read_noise_e: NonNegativeFloat | None = None
    bit_depth: Annotated[int, Field(ge=8, le=32)] = 16


class Defaults(_Strict):
    """Settings used when the command line or protocol gives none."""

    laser_line: int = 488
    power_mw: PositiveFloat = 20.0
    exposure_ms: PositiveFloat = 10.0


class SMLMSettings(_Strict):
    """What single-molecule localisation runs use of this microscope."""

    activation_line: int | None = Field(
        default=None,
        description="laser line (nm) that returns photoswitching dyes to the on state (405); "
        "lit with the excitation in SMLM sets, its power held by the density control",
    )
    line: int | None = Field(
        default=None, description="excitation line of SMLM runs given none (e.g. 640)"
    )
    power_mw: PositiveFloat | None = Field(
        default=None, description="its power in SMLM runs given none (high: dyes blink)"
    )


class Profile(_Strict):
    """A validated hardware profile."""

    name: str
    description: str = ""
    config: str = Field(description="Micro-Manager .cfg, relative to the profile file")
    roles: Roles
    optics: OpticsSettings = OpticsSettings()
    sim: SIMPatternSettings = SIMPatternSettings()
    limits: SafetyLimits
    defaults: Defaults = Defaults()
    camera: CameraNoise = CameraNoise()
    smlm: SMLMSettings = SMLMSettings()
    micromanager: MicroManagerSettings = MicroManagerSettings()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        lines = set(self.roles.lasers)
        missing = lines - set(self.limits.max_power_mw)
        if missing:
            raise ValueError(
                f"limits.max_power_mw has no limit for laser line(s) {sorted(missing)}"
            )
        activation, smlm_line = self.smlm.activation_line, self.smlm.line
        for name, line in (("activation_line", activation), ("line", smlm_line)):
            if line is not None and line not in lines:
                raise ValueError(f"smlm.{name} {line} is not in roles.lasers")
        if self.smlm.power_mw is not None:
            if smlm_line is None:
                raise ValueError("smlm.power_mw needs smlm.line")
            if self.smlm.power_mw > self.limits.max_power_mw[smlm_line]:
                raise ValueError("smlm.power_mw exceeds limits.max_power_mw")
        if self.defaults.laser_line not in lines:
            raise ValueError(
                f"defaults.laser_line {self.defaults.laser_line} is not in roles.lasers"
            )
        if self.defaults.power_mw > self.limits.max_power_mw[self.defaults.laser_line]:
            raise ValueError("defaults.power_mw exceeds limits.max_power_mw")
        if not (
            self.limits.min_exposure_ms <= self.defaults.exposure_ms <= self.limits.max_exposure_ms
        ):
            raise ValueError("defaults.exposure_ms is outside the exposure limits")
        return self

    @property
    def config_path(self) -> Path:
        """Absolute path of the Micro-Manager configuration file."""
        base = self.source.parent if self.source else PROFILE_DIR
        return (base / self.config).resolve()

    @property
    def laser_lines(self) -> list[int]:
        return sorted(self.roles.lasers)

    def check_power(self, line: int, power_mw: float) -> None:
        """Raise :class:`SafetyError` if ``power_mw`` is outside the profile's limits."""
        from srlive.errors import SafetyError

        if line not in self.limits.max_power_mw:
            raise SafetyError(f"laser line {line} nm is not in profile {self.name!r}")
        limit = self.limits.max_power_mw[line]
        if not (0.0 <= power_mw <= limit) or math.isnan(power_mw):
            raise SafetyError(
                f"laser {line} nm power {power_mw:g} mW is outside the profile limit 0–{limit:g} mW"
            )

    def check_exposure(self, exposure_ms: float) -> None:
        """Raise :class:`SafetyError` if the exposure is outside the profile's limits."""
        from srlive.errors import SafetyError

        lo, hi = self.limits.min_exposure_ms, self.limits.max_exposure_ms
        if not (lo <= exposure_ms <= hi):
            raise SafetyError(
                f"exposure {exposure_ms:g} ms is outside the profile limits {lo:g}–{hi:g} ms"
            )


def _format_validation_error(err: ValidationError, path: Path) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{path}: field '{loc}': {first['msg']}{more}"


def resolve_profile_path(name_or_path: str | Path | None) -> Path:
    """Find a profile by name (in ``hardware_profiles/``) or by path."""
    if name_or_path is None:
        name_or_path = DEFAULT_PROFILE
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.exists():
            raise ProfileError(f"profile file not found: {candidate}")
        if not candidate.is_file():
            raise ProfileError(f"profile is not a file: {candidate}")
        return candidate.resolve()
    for suffix in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}{suffix}"
        if path.is_file():
            return path
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
    raise ProfileError(f"unknown profile {str(name_or_path)!r} (known: {known})")


def load_profile(name_or_path: str | Path | None = None) -> Profile:
    """Load and validate a profile; errors name the file and field on one line."""
    path = resolve_profile_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProfileError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a YAML mapping")
    try:
        profile = Profile.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ProfileError(_format_validation_error(exc, path)) from None
    if not profile.config_path.is_file():
        raise ProfileError(f"{path}: field 'config': file not found: {profile.config_path}")
    return profile
