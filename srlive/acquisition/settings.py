"""One validation of what a set is lit and exposed with: laser line, power and exposure.

``None`` means "not given": the profile's default applies. A given value is checked against
the profile (a connected :class:`~srlive.hardware.microscope.Microscope`'s profile carries the
stricter of its own and the devices' limits) and refused on one line, never replaced by the
default: ``--exposure-ms 0`` is an error, not 10 ms. ``run``, ``acquire`` and the protocol
plans all resolve their settings here, before any device is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from srlive.errors import SafetyError
from srlive.profiles import Profile


@dataclass(frozen=True)
class Illumination:
    """The laser line, its power and the camera exposure of a set, checked."""

    line: int
    power_mw: float
    exposure_ms: float


def _number(what: str, value: object) -> float:
    """``value`` as a finite float, or a :class:`SafetyError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SafetyError(f"{what} {value!r} is not a number")
    if not math.isfinite(value):
        raise SafetyError(f"{what} must be a finite number, got {value}")
    return float(value)


def check_line(profile: Profile, line: object) -> int:
    """``line`` if it is one of the profile's laser lines (nm)."""
    known = ", ".join(str(ln) for ln in profile.laser_lines)
    if isinstance(line, bool) or not isinstance(line, int) or line not in profile.roles.lasers:
        raise SafetyError(
            f"laser line {line} nm is not in profile {profile.name!r} (its lines: {known} nm)"
        )
    return line


def check_exposure(profile: Profile, exposure_ms: object) -> float:
    """``exposure_ms`` if it is finite, positive and within the profile's limits."""
    value = _number("exposure (ms)", exposure_ms)
    profile.check_exposure(value)
    if value <= 0:  # the profile's lower limit is positive: a backstop
        raise SafetyError(f"exposure {value:g} ms must be more than 0 ms")
    return value


def check_power(profile: Profile, line: int, power_mw: object) -> float:
    """``power_mw`` if it is finite and within the line's limit."""
    value = _number(f"laser {line} nm power (mW)", power_mw)
    profile.check_power(line, value)
    return value


def resolve_illumination(
    profile: Profile,
    *,
    line: object = None,
    power_mw: object = None,
    exposure_ms: object = None,
) -> Illumination:
    """The given settings, checked; the profile's defaults for those not given (``None``)."""
    defaults = profile.defaults
    line = defaults.laser_line if line is None else check_line(profile, line)
    exposure = defaults.exposure_ms if exposure_ms is None else exposure_ms
    power = defaults.power_mw if power_mw is None else power_mw
    return Illumination(
        line=check_line(profile, line),
        power_mw=check_power(profile, line, power),
        exposure_ms=check_exposure(profile, exposure),
    )
