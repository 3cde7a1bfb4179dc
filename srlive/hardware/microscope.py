"""Role objects over a Micro-Manager core: camera, lasers, SLM and stages by role.

Every setting passes the profile's safety limits before it reaches the core.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from srlive.profiles import Profile, ProfileError
from srlive.safety import SafetyError

log = logging.getLogger(__name__)


class Microscope:
    """The devices a profile names, driven through one Micro-Manager core."""

    def __init__(self, core: Any, profile: Profile) -> None:
        self.core = core
        self.profile = profile
        self.roles = profile.roles
        self._check_roles()

    def _check_roles(self) -> None:
        loaded = set(self.core.getLoadedDevices())
        wanted = {"roles.camera": self.roles.camera}
        wanted |= {f"roles.lasers.{line}": label for line, label in self.roles.lasers.items()}
        for role in ("slm", "z_stage", "xy_stage", "simulator_hub"):
            if (label := getattr(self.roles, role)) is not None:
                wanted[f"roles.{role}"] = label
        for field, label in wanted.items():
            if label not in loaded:
                raise ProfileError(
                    f"{self.profile.source}: field '{field}': device {label!r} is not loaded "
                    f"by {self.profile.config_path.name}"
                )

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
    def camera_offset_adu(self) -> float:
        """The camera's offset (its ``Offset`` property where it has one, else 100 ADU)."""
        core, cam = self.core, self.roles.camera
        if core.hasProperty(cam, "Offset"):
            return float(core.getProperty(cam, "Offset"))
        return 100.0

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

    # --- generic properties --------------------------------------------------------
    def set_property(self, label: str, prop: str, value: str) -> None:
        """Set any Micro-Manager property; laser power and exposure still pass the limits."""
        if label not in set(self.core.getLoadedDevices()):
            raise ProfileError(f"--set: no device {label!r} is loaded")
        for line, laser in self.roles.lasers.items():
            if label == laser and prop == self.roles.laser_power_property:
                self.profile.check_power(line, float(value))
        if label == self.roles.camera and prop == "Exposure":
            self.profile.check_exposure(float(value))
        self.core.setProperty(label, prop, value)

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
