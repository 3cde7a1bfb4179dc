"""Role objects over a Micro-Manager core: camera, lasers, SLM and stages by role.

Every setting passes the safety limits before it reaches the core. At connect time each role
device is checked for its kind (a camera role is a camera, a laser role a shutter with a power
property and, where it reports one, the right wavelength) and the profile's limits meet the
devices' own: the stricter one applies. :meth:`Microscope.set_property` is the one way a
user's property write (``--set``, a protocol's ``properties``) reaches the core.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymmcore_plus import DeviceType

from srlive.errors import SafetyError
from srlive.profiles import Profile, ProfileError
from srlive.storage.noise import NoiseRecord

log = logging.getLogger(__name__)

# the kind of device each role must be (lasers: shutters, switched by setShutterOpen)
ROLE_TYPES: dict[str, DeviceType] = {
    "camera": DeviceType.CameraDevice,
    "lasers": DeviceType.ShutterDevice,
    "slm": DeviceType.SLMDevice,
    "z_stage": DeviceType.StageDevice,
    "xy_stage": DeviceType.XYStageDevice,
    "simulator_hub": DeviceType.HubDevice,
}
CORE_LABEL = "Core"
WAVELENGTH_PROPERTY = "Wavelength"
EXPOSURE_PROPERTY = "Exposure"
# (profile camera field, camera property, default): the camera's noise model
CAMERA_NOISE_PROPERTIES = (
    ("offset_adu", "Offset", 100.0),
    ("e_per_adu", "Gain", None),
    ("read_noise_e", "ReadNoiseE", None),
)


def device_type(value: Any) -> DeviceType:
    """A core's device type (an int, an enum, or a Java enum from the bridge) as DeviceType."""
    for name in ("swig_value", "swigValue"):  # MMCoreJ's SWIG enums over pycromanager
        if callable(getattr(value, name, None)):
            value = getattr(value, name)()
            break
    try:
        return DeviceType(int(value))
    except (TypeError, ValueError):
        pass
    name = str(getattr(value, "name", value)).rsplit(".", 1)[-1]
    try:
        return DeviceType[name]
    except KeyError:
        return DeviceType.UnknownType


def _number(what: str, value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SafetyError(f"{what}: {value!r} is not a number") from None


class Microscope:
    """The devices a profile names, driven through one Micro-Manager core."""

    def __init__(self, core: Any, profile: Profile) -> None:
        self.core = core
        self.roles = profile.roles
        self.profile = profile
        self._check_roles()
        self.profile = self._with_device_limits(profile)

    # --- connect-time checks ----------------------------------------------------------
    def _role_error(self, role: str, message: str) -> ProfileError:
        return ProfileError(f"{self.profile.source}: field 'roles.{role}': {message}")

    def _check_roles(self) -> None:
        """Every role's device is loaded, of the role's kind, and (lasers) the right line."""
        loaded = set(self.core.getLoadedDevices())
        for role, label in self.roles.labelled().items():
            if label not in loaded:
                raise self._role_error(
                    role,
                    f"device {label!r} is not loaded by {self.profile.config_path.name}",
                )
            wanted = ROLE_TYPES[role.split(".")[0]]
            kind = device_type(self.core.getDeviceType(label))
            if kind == DeviceType.UnknownType:  # a core that does not say: nothing to check
                log.warning("%s: cannot read the device type of %r", self.profile.source, label)
            elif kind != wanted:
                raise self._role_error(
                    role, f"device {label!r} is a {kind.name}, the role needs a {wanted.name}"
                )
        for line, label in self.roles.lasers.items():
            self._check_laser(line, label)

    def _check_laser(self, line: int, label: str) -> None:
        power = self.roles.laser_power_property
        if not self.core.hasProperty(label, power):
            raise self._role_error(
                f"lasers.{line}",
                f"device {label!r} has no power property {power!r} (roles.laser_power_property)",
            )
        if self.core.hasProperty(label, WAVELENGTH_PROPERTY):
            reported = self.core.getProperty(label, WAVELENGTH_PROPERTY)
            try:
                same = float(reported) == float(line)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise self._role_error(
                    f"lasers.{line}", f"device {label!r} reports Wavelength {reported} nm"
                )

    def _device_range(self, label: str, prop: str) -> tuple[float, float] | None:
        if not self.core.hasProperty(label, prop) or not self.core.hasPropertyLimits(label, prop):
            return None
        lo = float(self.core.getPropertyLowerLimit(label, prop))
        hi = float(self.core.getPropertyUpperLimit(label, prop))
        return (lo, hi) if lo <= hi else None

    def _with_device_limits(self, profile: Profile) -> Profile:
        """The profile with each limit the stricter of its own and the device's (warned)."""
        limits = profile.limits
        power = {line: self._power_limit(line, mw) for line, mw in limits.max_power_mw.items()}
        exposure = self._exposure_limits(limits.min_exposure_ms, limits.max_exposure_ms)
        if power == limits.max_power_mw and exposure == (
            limits.min_exposure_ms,
            limits.max_exposure_ms,
        ):
            return profile
        tightened = limits.model_copy(
            update={
                "max_power_mw": power,
                "min_exposure_ms": exposure[0],
                "max_exposure_ms": exposure[1],
            }
        )
        return profile.model_copy(update={"limits": tightened})

    def _power_limit(self, line: int, limit_mw: float) -> float:
        label = self.roles.lasers.get(line)
        device = self._device_range(label, self.roles.laser_power_property) if label else None
        if device is None or device[1] >= limit_mw:
            return limit_mw
        log.warning(
            f"{self.profile.source}: limits.max_power_mw.{line} is {limit_mw:g} mW but {label} "
            f"allows at most {device[1]:g} mW: {device[1]:g} mW applies"
        )
        return device[1]

    def _exposure_limits(self, lo: float, hi: float) -> tuple[float, float]:
        device = self._device_range(self.roles.camera, EXPOSURE_PROPERTY)
        if device is None or (device[0] <= lo and device[1] >= hi):
            return lo, hi
        where = f"{self.profile.source}: the camera {self.roles.camera} exposes"
        if max(lo, device[0]) > min(hi, device[1]):
            raise ProfileError(
                f"{where} {device[0]:g}–{device[1]:g} ms, outside limits.min_exposure_ms–"
                f"max_exposure_ms {lo:g}–{hi:g} ms"
            )
        lo, hi = max(lo, device[0]), min(hi, device[1])
        log.warning(
            f"{where} {device[0]:g}–{device[1]:g} ms: exposure limits {lo:g}–{hi:g} ms apply"
        )
        return lo, hi

    # --- camera --------------------------------------------------------------------
    def set_exposure(self, exposure_ms: float) -> None:
        self.profile.check_exposure(exposure_ms)
        self.core.setExposure(self.roles.camera, float(exposure_ms))

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (self.core.getImageHeight(), self.core.getImageWidth())

    @property
    def pixel_nm(self) -> float:
        return self.profile.optics.pixel_nm

    @property
    def readout_ms(self) -> float:
        """The camera's readout time per frame, ms (its ``ReadoutTime``; 0 if it has none)."""
        cam = self.roles.camera
        if self.core.hasProperty(cam, "ReadoutTime"):
            return float(self.core.getProperty(cam, "ReadoutTime"))
        return 0.0

    @property
    def camera_offset_adu(self) -> float:
        """The camera's offset ADU (see :attr:`camera_noise`)."""
        return self.camera_noise.offset_adu

    @property
    def camera_noise(self) -> NoiseRecord:
        """The camera's noise model: the profile's ``camera`` values where set, else the
        camera's ``Offset``, ``Gain`` (e⁻/ADU) and ``ReadNoiseE`` properties where it has
        them, else a typical sCMOS (100 ADU offset); ``source`` says which."""
        core, cam, given = self.core, self.roles.camera, self.profile.camera
        values: dict[str, float | None] = {}
        sources: list[str] = []
        for key, prop, default in CAMERA_NOISE_PROPERTIES:
            value, source = getattr(given, key), "profile"
            if value is None and core.hasProperty(cam, prop):
                try:
                    value, source = float(core.getProperty(cam, prop)), "camera"
                except ValueError:
                    value = None
            if value is None and default is not None:
                value, source = default, "default"
            values[key] = value
            if value is not None and source not in sources:
                sources.append(source)
        return NoiseRecord(
            offset_adu=float(values["offset_adu"] or 0.0),
            e_per_adu=values["e_per_adu"] or None,
            read_noise_e=values["read_noise_e"],
            source="+".join(sources),
        )

    # --- lasers --------------------------------------------------------------------
    def laser_label(self, line: int) -> str:
        try:
            return self.roles.lasers[line]
        except KeyError:
            raise SafetyError(
                f"laser line {line} nm is not in profile {self.profile.name!r}"
            ) from None

    def set_power(self, line: int, power_mw: float) -> None:
        self.profile.check_power(line, power_mw)
        self.core.setProperty(self.laser_label(line), self.roles.laser_power_property, power_mw)

    def power(self, line: int) -> float:
        return float(self.core.getProperty(self.laser_label(line), self.roles.laser_power_property))

    def set_gated(self, line: int, gated: bool) -> None:
        """Gate emission by the camera exposure, where the laser supports it."""
        label, prop = self.laser_label(line), self.roles.laser_gate_property
        if prop and self.core.hasProperty(label, prop):
            self.core.setProperty(label, prop, "Yes" if gated else "No")

    def laser_on(self, line: int) -> None:
        self.core.setShutterOpen(self.laser_label(line), True)

    def laser_off(self, line: int) -> None:
        self.core.setShutterOpen(self.laser_label(line), False)

    def laser_is_on(self, line: int) -> bool:
        return bool(self.core.getShutterOpen(self.laser_label(line)))

    # --- SLM -----------------------------------------------------------------------
    @property
    def has_slm(self) -> bool:
        return self.roles.slm is not None

    @property
    def slm_shape(self) -> tuple[int, int]:
        slm = self._slm()
        return (self.core.getSLMHeight(slm), self.core.getSLMWidth(slm))

    def _slm(self) -> str:
        if self.roles.slm is None:
            raise ProfileError(f"profile {self.profile.name!r} has no SLM (roles.slm)")
        return self.roles.slm

    def show_slm(self, image: np.ndarray) -> None:
        slm = self._slm()
        self.core.setSLMImage(slm, image)
        self.core.displaySLMImage(slm)

    def blank_slm(self) -> None:
        if self.roles.slm is None:
            return
        shape = self.slm_shape
        self.show_slm(np.full(shape, self.profile.sim.blank_value, np.uint8))

    def slm_can_sequence(self, length: int) -> bool:
        return self.has_slm and self.core.getSLMSequenceMaxLength(self._slm()) >= length

    def start_slm_sequence(self, images: Sequence[np.ndarray]) -> None:
        slm = self._slm()
        self.core.loadSLMSequence(slm, list(images))
        self.core.startSLMSequence(slm)

    def stop_slm_sequence(self) -> None:
        if self.roles.slm is not None:
            self.core.stopSLMSequence(self.roles.slm)

    # --- the property interlock -----------------------------------------------------
    def set_property(self, label: str, prop: str, value: str) -> None:
        """The one way a user's property write (``--set``, ``properties``) reaches the core.

        Unknown devices and properties, read-only ones and whatever defines a device or a
        role (pre-initialisation properties such as a laser's Wavelength or MaxPowerMW, the
        Core's role assignments) are refused on one line. Of a laser role only the power
        may be set, through :meth:`set_power` and its limits; the camera's exposure goes
        through :meth:`set_exposure`; other light sources are refused.
        """
        what = f"property {label}.{prop}"
        self._check_writable(what, label, prop)
        lasers = {laser: line for line, laser in self.roles.lasers.items()}
        if label in lasers:
            if prop != self.roles.laser_power_property:
                raise SafetyError(
                    f"{what}: the {lasers[label]} nm laser's emission is srlive's to control; "
                    f"only its {self.roles.laser_power_property} may be set (within the limits)"
                )
            self.set_power(lasers[label], _number(what, value))
            return
        if label == self.roles.camera and prop == EXPOSURE_PROPERTY:
            self.set_exposure(_number(what, value))
            return
        if device_type(self.core.getDeviceType(label)) == DeviceType.ShutterDevice:
            raise SafetyError(
                f"{what}: {label!r} is a shutter or light source outside the profile's laser "
                "roles; srlive cannot hold it to a limit"
            )
        try:
            self.core.setProperty(label, prop, value)
        except Exception as exc:  # the device refused the value: one line, naming it
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise ProfileError(f"{what}={value}: {text}") from None

    def _check_writable(self, what: str, label: str, prop: str) -> None:
        if label not in set(self.core.getLoadedDevices()):
            raise ProfileError(f"{what}: no device {label!r} is loaded")
        if label == CORE_LABEL:
            raise SafetyError(f"{what}: the Core's settings assign the roles; set them in the .cfg")
        if not self.core.hasProperty(label, prop):
            names = self.core.getDevicePropertyNames(label)
            names = ", ".join(sorted(str(getattr(n, "value", n)) for n in names))
            raise ProfileError(f"{what}: device {label!r} has no property {prop!r} ({names})")
        if self.core.isPropertyReadOnly(label, prop):
            raise ProfileError(f"{what}: the property is read-only")
        if self.core.isPropertyPreInit(label, prop):
            raise SafetyError(
                f"{what}: a pre-initialisation property defines the device; set it in the .cfg"
            )

    # --- safety --------------------------------------------------------------------
    def make_safe(self) -> None:
        """Stop acquisition, all lasers off, SLM blank. Every step is tried."""
        steps = [self._stop_camera, self._all_lasers_off, self.stop_slm_sequence, self.blank_slm]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep going: the lasers matter most
                errors.append(f"{step.__name__}: {exc}")
        if errors:
            log.error("make_safe: %s", "; ".join(errors))

    def _stop_camera(self) -> None:
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()

    def _all_lasers_off(self) -> None:
        for line in self.roles.lasers:
            self.laser_off(line)
