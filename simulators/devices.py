"""Micro-Manager Python device adapters for the simulated SIM microscope.

These are genuine pymmcore-plus ``UniMMCore`` devices, loaded from a ``.cfg`` with
``#py pyDevice,<label>,simulators.devices,<Class>`` lines. The hub owns one
:class:`~simulators.world.SimulatedWorld`; every peripheral whose ``Parent`` is that hub
acts on the same world, so the camera sees what the lasers, SLM and stages are doing.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import (
    CameraDevice,
    HubDevice,
    ShutterDevice,
    SLMDevice,
    StageDevice,
    XYStageDevice,
    pymm_property,
)

from simulators.samples import SAMPLE_KINDS
from simulators.world import SimulatedWorld

if TYPE_CHECKING:  # pymm_property's return type, not exported by pymmcore-plus
    from pymmcore_plus.experimental.unicore.devices._properties import PropertyController

FILE_SAMPLE = "file"
DEFAULT_MAX_POWER_MW = {488: 200.0, 561: 200.0, 640: 150.0}

# Hubs register here on construction so that peripherals can find their world by the
# parent label given in the .cfg (``Parent,<device>,<hub>``).
_HUBS: weakref.WeakValueDictionary[str, SimHub] = weakref.WeakValueDictionary()


def _world_number(
    name: str, attribute: str, limits: tuple[float, float], doc: str
) -> PropertyController[SimHub, float]:
    """A hub property that reads and writes the float ``attribute`` of the hub's world."""

    def get(hub: SimHub) -> float:
        return float(getattr(hub.world, attribute))

    def set_(hub: SimHub, value: float) -> None:
        setattr(hub.world, attribute, float(value))

    get.__doc__ = doc
    return pymm_property(name=name, limits=limits)(get).setter(set_)


class SimHub(HubDevice):
    """Owner of the simulated world: the sample, optics, photophysics and camera physics."""

    def __init__(self) -> None:
        super().__init__()
        self.world = SimulatedWorld()
        self._sample_file = ""

    def initialize(self) -> None:
        _HUBS[self.get_label()] = self

    def shutdown(self) -> None:
        self.world.all_light_off()
        if _HUBS.get(self.get_label()) is self:
            del _HUBS[self.get_label()]

    def get_installed_peripherals(self) -> Sequence[tuple[str, str]]:
        return [
            ("SimCamera", "Simulated sCMOS camera"),
            ("SimLaser", "Simulated laser line (power in mW, on/off)"),
            ("SimSLM", "Simulated binary ferroelectric SLM"),
            ("SimZStage", "Simulated piezo z stage"),
            ("SimXYStage", "Simulated XY stage"),
        ]

    # --- sample -----------------------------------------------------------------------
    @pymm_property(name="Sample", allowed_values=(*SAMPLE_KINDS, FILE_SAMPLE))
    def sample(self) -> str:
        """Built-in structure, or 'file' when ``SampleFile`` is in use."""
        return self.world.sample_kind

    @sample.setter
    def sample(self, value: str) -> None:
        if value == FILE_SAMPLE:
            if not self._sample_file:
                raise ValueError("set SampleFile to a .npy or .tif density first")
            return
        self.world.set_sample_kind(value)

    @pymm_property(name="SampleFile")
    def sample_file(self) -> str:
        """Path to a user-supplied 2D/3D fluorophore density (.npy or .tif)."""
        return self._sample_file

    @sample_file.setter
    def sample_file(self, value: str) -> None:
        value = str(value).strip()
        if value:
            self.world.set_sample_file(Path(value))
        self._sample_file = value

    @pymm_property(name="SamplePixelSizeNm", limits=(1.0, 1000.0))
    def sample_pixel_size_nm(self) -> float:
        """Pixel size of the user-supplied density."""
        return self.world.sample_file_pixel_nm

    @sample_pixel_size_nm.setter
    def sample_pixel_size_nm(self, value: float) -> None:
        self.world.set_sample_file_pixel_nm(float(value))

    @pymm_property(name="Seed", limits=(0, 2**31 - 1))
    def seed(self) -> int:
        """Random seed of the sample and of the camera noise."""
        return self.world.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.world.set_seed(int(value))

    @pymm_property(name="Motion", allowed_values=("On", "Off"))
    def motion(self) -> str:
        """Live dynamics of the sample (growth, diffusion, drift)."""
        return "On" if self.world.motion else "Off"

    @motion.setter
    def motion(self, value: str) -> None:
        self.world.set_motion(value == "On")

    @pymm_property(name="FrameSize", limits=(32, 2048))
    def frame_size(self) -> int:
        """Camera ROI edge in pixels (square, even)."""
        return self.world.frame_shape[0]

    @frame_size.setter
    def frame_size(self, value: int) -> None:
        size = int(float(value))
        if size % 2:
            raise ValueError(f"FrameSize must be even, got {size}")
        self.world.set_frame_shape((size, size))

    # --- photophysics ---------------------------------------------------------------
    brightness = _world_number(
        "BrightnessPhotonsPerMWms",
        "brightness",
        (0.0, 1e4),
        "Photons per camera pixel per mW per ms for unit fluorophore density.",
    )

    @pymm_property(name="ModulationDepth", limits=(0.0, 1.0))
    def modulation_depth(self) -> float:
        """Contrast of the interference fringes at the sample."""
        return self.world.modulation_depth

    @modulation_depth.setter
    def modulation_depth(self, value: float) -> None:
        self.world.set_modulation_depth(float(value))

    bleach_half_dose = _world_number(
        "BleachHalfDoseMJ",
        "bleach_half_dose_mj",
        (1e-3, 1e9),
        "Accumulated light dose (mJ) that bleaches half of the fluorophores.",
    )
    smlm_threshold = _world_number(
        "SMLMThresholdMW",
        "smlm_threshold_mw",
        (0.0, 1e4),
        "Laser power above which fluorophores are driven into sparse blinking.",
    )

    @pymm_property(name="SMLMDriftNmPerFrame", limits=(-100.0, 100.0))
    def smlm_drift(self) -> float:
        """SMLM: the sample drifts this far (nm) along x and y per frame."""
        return self.world.smlm_drift_nm_per_frame

    @smlm_drift.setter
    def smlm_drift(self, value: float) -> None:
        self.world.smlm_drift_nm_per_frame = float(value)

    @pymm_property(name="Fluctuation", allowed_values=("On", "Off"))
    def fluctuation(self) -> str:
        """Blinking dyes below the SMLM threshold (bursts for SRRF/SOFI); Off: continuous."""
        return "On" if self.world.fluctuation else "Off"

    @fluctuation.setter
    def fluctuation(self, value: str) -> None:
        self.world.set_fluctuation(value == "On")

    @pymm_property(name="DoseMJ", is_read_only=True)
    def dose(self) -> float:
        """Light dose the sample has received so far (mJ)."""
        return self.world.dose_mj()

    @pymm_property(name="SurvivingFraction", is_read_only=True)
    def surviving_fraction(self) -> float:
        """Fraction of fluorophores not yet bleached."""
        return self.world.surviving_fraction()


def hub_world(label: str = "SimHub") -> SimulatedWorld:
    """The simulated world of a loaded hub (benchmarks read its ground truth)."""
    hub = _HUBS.get(label)
    if hub is None:
        raise RuntimeError(f"no simulated hub {label!r} is loaded")
    return hub.world


class _Peripheral:
    """Mixin: find the parent hub's world."""

    _world_ref: SimulatedWorld | None = None

    @property
    def world(self) -> SimulatedWorld:
        if self._world_ref is None:
            parent = self.get_parent_label()  # type: ignore[attr-defined]
            hub = _HUBS.get(parent) if parent else None
            if hub is None and not parent and len(_HUBS) == 1:
                hub = next(iter(_HUBS.values()))
            if hub is None:
                raise RuntimeError(
                    f"device {self.get_label()!r} needs a SimHub parent "  # type: ignore[attr-defined]
                    f"(add 'Parent,{self.get_label()},<hub label>' to the .cfg)"  # type: ignore[attr-defined]
                )
            self._world_ref = hub.world
        return self._world_ref


class SimCamera(_Peripheral, CameraDevice):
    """Simulated sCMOS camera: exposure, rolling readout, sequence acquisition."""

    def __init__(self) -> None:
        super().__init__()
        self._exposure_ms = 10.0

    def initialize(self) -> None:
        _ = self.world  # fail early if the hub is missing

    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        exposure = float(exposure)
        if not 0.01 <= exposure <= 10_000:
            raise ValueError(f"exposure {exposure} ms is outside 0.01–10000 ms")
        self._exposure_ms = exposure

    def shape(self) -> tuple[int, int]:
        return self.world.frame_shape

    def dtype(self) -> DTypeLike:
        return np.uint16

    def get_binning(self) -> int:
        return 1

    def get_readout_time(self) -> float:
        """Rolling-shutter readout time of the current ROI (ms)."""
        return self.world.readout_ms()

    def get_offset(self) -> float:
        return self.world.camera.offset_adu

    def get_gain(self) -> float:
        """Electrons per ADU."""
        return self.world.camera.e_per_adu

    @pymm_property(name="ReadNoiseE", is_read_only=True)
    def read_noise(self) -> float:
        """Read noise in electrons rms."""
        return self.world.camera.read_noise_e

    def start_sequence(
        self,
        n: int | None,
        get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray],
    ) -> Iterator[Mapping]:
        """Acquire ``n`` frames (or until stopped) no faster than exposure + readout."""
        world = self.world
        shape = self.shape()
        next_due = time.perf_counter()
        count = 0
        while n is None or count < n:
            exposure = self._exposure_ms
            period_s = world.frame_interval_ms(exposure) / 1000.0
            buffer = get_buffer(shape, np.uint16)
            _, meta = world.expose(exposure, out=buffer)
            next_due += period_s
            delay = next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -2 * period_s:
                # the simulation fell well behind the camera's frame clock: restart the clock
                # rather than burst (a short lag is made up, so the mean rate stays exact and
                # frames are never delivered ahead of the exposure + readout schedule)
                next_due = time.perf_counter()
            count += 1
            yield {key: str(value) for key, value in meta.items()}


class SimLaser(_Peripheral, ShutterDevice):
    """One laser line: power in mW within hard limits, emission on/off (shutter state).

    With ``Gated`` = Yes the emission is triggered by the camera's exposure output, so the
    sample is lit only while the camera exposes. ``Wavelength`` and ``MaxPowerMW`` define the
    line: they are set before initialisation and refused after it. ``PowerMW`` is registered
    per instance, so each laser's limit is its own (a class-level property's limits would be
    shared by every laser).
    """

    def __init__(self) -> None:
        super().__init__()
        self._line = 488
        self._max_power = DEFAULT_MAX_POWER_MW[488]
        self._max_power_set = False
        self._initialized = False
        self.register_property(
            "PowerMW",
            getter=SimLaser._get_power,
            setter=SimLaser._set_power,
            limits=(0.0, self._max_power),
            property_type=float,
        )

    def initialize(self) -> None:
        self.set_property_limits("PowerMW", (0.0, self._max_power))
        self.world.register_laser(self._line, self._max_power)
        self._initialized = True

    def _refuse_after_init(self, name: str) -> None:
        if self._initialized:
            raise ValueError(
                f"{self.get_label()}.{name} defines the laser: set it before initialisation"
            )

    def shutdown(self) -> None:
        if self._world_ref is not None:
            self.world.set_laser(self._line, on=False)

    @pymm_property(is_pre_init=True, name="Wavelength", limits=(350, 800))
    def wavelength(self) -> int:
        """Laser line in nm (set before initialisation)."""
        return self._line

    @wavelength.setter
    def wavelength(self, value: int) -> None:
        self._refuse_after_init("Wavelength")
        self._line = int(value)
        if not self._max_power_set:
            self._max_power = DEFAULT_MAX_POWER_MW.get(self._line, 100.0)

    @pymm_property(is_pre_init=True, name="MaxPowerMW", limits=(0.0, 10_000.0))
    def max_power(self) -> float:
        """Hardware maximum power in mW (set before initialisation)."""
        return self._max_power

    @max_power.setter
    def max_power(self, value: float) -> None:
        self._refuse_after_init("MaxPowerMW")
        self._max_power = float(value)
        self._max_power_set = True

    def _get_power(self) -> float:
        """Output power in mW (the ``PowerMW`` property); values above MaxPowerMW are refused."""
        return self.world.lasers[self._line].power_mw

    def _set_power(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= self._max_power:
            raise ValueError(f"power {value} mW is outside 0–{self._max_power} mW")
        self.world.set_laser(self._line, power_mw=value)

    @pymm_property(name="Gated", allowed_values=("Yes", "No"))
    def gated(self) -> str:
        """Emission gated by the camera exposure signal."""
        return "Yes" if self.world.lasers[self._line].gated else "No"

    @gated.setter
    def gated(self, value: str) -> None:
        self.world.set_laser(self._line, gated=(value == "Yes"))

    def get_open(self) -> bool:
        return self.world.lasers[self._line].on

    def set_open(self, open: bool) -> None:
        self.world.set_laser(self._line, on=bool(open))


class SimSLM(_Peripheral, SLMDevice):
    """Binary ferroelectric SLM (2048×1536, 8-bit frame buffer, >0 = phase π).

    Supports uploading an image sequence that advances on each camera exposure
    (hardware triggering), cycling like a running order.
    """

    SHAPE = (1536, 2048)
    MAX_SEQUENCE = 1024

    def __init__(self) -> None:
        super().__init__()
        self._pending = np.zeros(self.SHAPE, np.uint8)
        self._exposure_ms = 0.0

    def initialize(self) -> None:
        self.world.slm_shape = self.SHAPE
        self.world.slm_display(np.zeros(self.SHAPE, np.uint8))

    def shutdown(self) -> None:
        if self._world_ref is not None:
            self.world.slm_stop_sequence()
            self.world.slm_display(np.zeros(self.SHAPE, np.uint8))

    def shape(self) -> tuple[int, int]:
        return self.SHAPE

    def dtype(self) -> DTypeLike:
        return np.uint8

    def set_image(self, pixels: np.ndarray) -> None:
        self._pending = np.array(pixels, dtype=np.uint8, copy=True)

    def get_image(self) -> np.ndarray:
        return self.world.slm_displayed_image()

    def display_image(self) -> None:
        self.world.slm_display(self._pending)

    def set_exposure(self, interval_ms: float) -> None:
        self._exposure_ms = float(interval_ms)

    def get_exposure(self) -> float:
        return self._exposure_ms

    def get_sequence_max_length(self) -> int:
        return self.MAX_SEQUENCE

    def send_sequence(self, sequence: Sequence[np.ndarray]) -> None:
        self.world.slm_load_sequence([np.asarray(img, np.uint8) for img in sequence])

    def start_sequence(self) -> None:
        self.world.slm_start_sequence()

    def stop_sequence(self) -> None:
        self.world.slm_stop_sequence()


class SimZStage(_Peripheral, StageDevice):
    """Piezo z stage (µm); defocus blurs the image through the optics model."""

    LIMITS_UM = (-100.0, 100.0)

    def set_position_um(self, val: float) -> None:
        lo, hi = self.LIMITS_UM
        if not lo <= val <= hi:
            raise ValueError(f"z position {val} µm is outside {lo}–{hi} µm")
        self.world.set_z(float(val))

    def get_position_um(self) -> float:
        return self.world.z_um

    def home(self) -> None:
        self.world.set_z(0.0)

    def stop(self) -> None:
        """Moves are instantaneous: nothing to stop."""

    def set_origin(self) -> None:
        self.world.set_z(0.0)


class SimXYStage(_Peripheral, XYStageDevice):
    """XY stage (µm); moving it translates the (periodic) sample under the objective."""

    def set_position_um(self, x: float, y: float) -> None:
        self.world.set_xy(float(x), float(y))

    def get_position_um(self) -> tuple[float, float]:
        return self.world.xy_um

    def home(self) -> None:
        self.world.set_xy(0.0, 0.0)

    def stop(self) -> None:
        """Moves are instantaneous: nothing to stop."""

    def set_origin_x(self) -> None:
        self.world.set_xy(0.0, self.world.xy_um[1])

    def set_origin_y(self) -> None:
        self.world.set_xy(self.world.xy_um[0], 0.0)
