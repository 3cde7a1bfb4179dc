"""Image formation: density × illumination, blurred by the optics, integrated on the camera.

``render_expected`` is the direct forward model. :class:`FringeCache` is the fast path for a
sample that does not change between frames: because blurring is linear and a fringe is a
cosine, the image under ``1 + a·cos(2πk·r + φ)`` is ``A0 + a·Re(e^{iφ}·B_k)`` with
``A0 = blur(ρ)`` and ``B_k = blur(ρ·e^{i2πk·r})`` binned to the camera — computed once per
wavevector, after which each frame is one linear combination on the camera grid.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from simulators.camera_model import CameraModel, bin_to_camera
from simulators.illumination import (
    IlluminationPattern,
    grid_coordinates,
    illumination_from_slm,
    sim_pattern_set,
)
from simulators.optics import blur, full_otf, otf_2d


def render_expected(
    density_hi: np.ndarray,
    pattern: IlluminationPattern,
    otf_hi: np.ndarray,
    oversample: int,
    scale: float,
    pixel_nm_hi: float,
) -> np.ndarray:
    """Expected photons per camera pixel (before noise) for one illumination pattern."""
    excitation = density_hi * pattern.intensity(density_hi.shape, pixel_nm_hi)
    blurred = np.clip(blur(excitation, otf_hi), 0.0, None)
    return bin_to_camera(blurred, oversample) * np.float32(scale / oversample**2)


class FringeCache:
    """Blurred, binned base image and fringe side-band images of one static density."""

    def __init__(
        self, density_hi: np.ndarray, otf_hi: np.ndarray, oversample: int, pixel_nm_hi: float
    ) -> None:
        self.density = density_hi.astype(np.float32, copy=False)
        self.otf = otf_hi
        self.oversample = oversample
        self.pixel_nm = pixel_nm_hi
        self.base = bin_to_camera(blur(self.density, otf_hi), oversample) / np.float32(
            oversample**2
        )
        self._full_otf: np.ndarray | None = None
        self._sidebands: dict[tuple[float, float], np.ndarray] = {}

    def sideband(self, ky: float, kx: float) -> np.ndarray:
        """``bin(blur(ρ·e^{i2π(ky·y + kx·x)}))`` (complex64, camera grid), cached."""
        key = (round(ky, 12), round(kx, 12))
        cached = self._sidebands.get(key)
        if cached is None:
            if self._full_otf is None:
                self._full_otf = full_otf(self.otf, self.density.shape)
            y, x = grid_coordinates(self.density.shape, self.pixel_nm)
            ramp = np.exp(2j * np.pi * (ky * y + kx * x)).astype(np.complex64)
            spectrum = sfft.fft2(self.density * ramp, workers=-1)
            spectrum *= self._full_otf
            blurred = sfft.ifft2(spectrum, workers=-1).astype(np.complex64)
            cached = bin_to_camera(blurred, self.oversample) / np.float32(self.oversample**2)
            self._sidebands[key] = cached
        return cached


def expected_from_cache(
    cache: FringeCache, pattern: IlluminationPattern, scale: float
) -> np.ndarray:
    """Expected photons per camera pixel for ``pattern`` from a :class:`FringeCache`."""
    image = cache.base * np.float32(pattern.dc)
    for ky, kx, amplitude, phase in pattern.components:
        sideband = cache.sideband(ky, kx)
        rotation = np.complex64(amplitude * np.exp(1j * phase))
        image = image + (sideband.real * rotation.real - sideband.imag * rotation.imag)
    image *= np.float32(scale)
    return np.clip(image, 0.0, None, out=image)


def default_sim_patterns(
    excitation_nm: float = 488.0,
    period_nm: float = 195.0,
    modulation: float = 0.8,
    n_angles: int = 3,
    n_phases: int = 3,
    angle_offset_rad: float = 0.0,
    na: float = 1.49,
    slm_pixel_nm_at_sample: float = 65.0,
    fov_nm: tuple[float, float] = (512 * 65.0, 512 * 65.0),
) -> list[IlluminationPattern]:
    """The SIM pattern set as the simulated SLM produces it (drawn gratings → illumination)."""
    slm_shape = (
        int(np.ceil(fov_nm[0] / slm_pixel_nm_at_sample)),
        int(np.ceil(fov_nm[1] / slm_pixel_nm_at_sample)),
    )
    angles = tuple(angle_offset_rad + np.pi * a / n_angles for a in range(n_angles))
    images = sim_pattern_set(slm_shape, period_nm, slm_pixel_nm_at_sample, angles, n_phases)
    return [
        illumination_from_slm(img, slm_pixel_nm_at_sample, na, excitation_nm, modulation)
        for img in images
    ]


def simulate_sim_stack(
    density_hi: np.ndarray,
    patterns: list[IlluminationPattern],
    *,
    pixel_nm_hi: float = 32.5,
    oversample: int = 2,
    na: float = 1.49,
    emission_nm: float = 510.0,
    power_mw: float = 20.0,
    exposure_ms: float = 10.0,
    brightness: float = 20.0,
    camera: CameraModel | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Raw frames (n, H, W) uint16 of a static density under each pattern, with noise."""
    camera = camera or CameraModel()
    rng = rng or np.random.default_rng(0)
    otf = otf_2d(density_hi.shape, pixel_nm_hi, na, emission_nm)
    cache = FringeCache(density_hi, otf, oversample, pixel_nm_hi)
    scale = power_mw * exposure_ms * brightness
    return np.stack(
        [camera.expose(expected_from_cache(cache, p, scale), exposure_ms, rng) for p in patterns]
    )
