"""Bursts of widefield frames of blinking emitters, with ground truth, for SRRF/SOFI.

Emitters are points (nm, (y, x), origin at the field centre) drawn from a density image at a
labelling density, each with a relative brightness (lognormal, mean 1). Their on/off/bleached
dynamics come from :mod:`simulators.blinking`; a frame is rendered as emitters → bilinear
histogram on a fine grid weighted by this frame's photons → FFT blur by the OTF → binned to
the camera → background → the sCMOS camera model (shot and read noise, offset, gain).

Labelling density is given per µm of filament in the convention of
:mod:`simulators.samples`, where a line adds density summing to 1 per grid pixel it crosses:
the expected number of emitters in a pixel is ``density · density_per_um · pixel_nm/1000``.
A uniformly filled region of density 1 therefore holds ``density_per_um · 1000/pixel_nm``
emitters per µm². The default 50 per µm (one dye per 20 nm) keeps ~10 dyes under the PSF
along a filament (2-3 on at a time at 20 mW: strong fluctuation contrast) and samples a line
finely enough for 2-4x resolution gains.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from simulators.blinking import (
    BLEACHED,
    BlinkRates,
    SwitchingDye,
    integrate_exposure,
    jump,
    stationary_states,
)
from simulators.camera_model import CameraModel, bin_to_camera
from simulators.optics import otf_2d, widefield_fwhm_nm
from simulators.photophysics import sample_emitters
from simulators.samples import make_sample

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
PSF_KINDS = ("airy", "gaussian")


@dataclass(frozen=True)
class Emitters:
    """Dye positions (N, 2) nm (y, x; origin at the field centre) and relative brightness."""

    positions_nm: np.ndarray
    brightness: np.ndarray
    field_nm: tuple[float, float]

    def __post_init__(self) -> None:
        if self.positions_nm.ndim != 2 or self.positions_nm.shape[1] != 2:
            raise ValueError(f"positions must be (N, 2), got {self.positions_nm.shape}")
        if self.brightness.shape != (len(self.positions_nm),):
            raise ValueError("brightness needs one value per emitter")
        if min(self.field_nm) <= 0:
            raise ValueError(f"field must be positive, got {self.field_nm} nm")

    def __len__(self) -> int:
        return len(self.positions_nm)


def _lognormal(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Relative brightness with mean 1 and log-spread ``sigma``."""
    return rng.lognormal(-0.5 * sigma**2, sigma, n).astype(np.float32)


def emitters_from_density(
    density: np.ndarray,
    pixel_nm: float,
    density_per_um: float = 50.0,
    rng: np.random.Generator | None = None,
    brightness_sigma: float = 0.3,
) -> Emitters:
    """Emitters drawn (Poisson per pixel, uniform within it) from a 2D density image."""
    density = np.asarray(density, np.float64)
    if density.ndim != 2:
        raise ValueError(f"density must be a 2D image, got {density.ndim}D")
    if not np.isfinite(density).all() or (density < 0).any():
        raise ValueError("density must be finite and non-negative")
    if pixel_nm <= 0 or density_per_um < 0:
        raise ValueError(
            f"need pixel_nm > 0 and density_per_um >= 0 ({pixel_nm}, {density_per_um})"
        )
    rng = rng or np.random.default_rng(0)
    positions = sample_emitters(density, pixel_nm, density_per_um * pixel_nm / 1000.0, rng)
    field_nm = (density.shape[0] * pixel_nm, density.shape[1] * pixel_nm)
    return Emitters(positions, _lognormal(len(positions), brightness_sigma, rng), field_nm)


def structure_emitters(
    kind: str = "er",
    frame_shape: tuple[int, int] = (512, 512),
    pixel_nm: float = 65.0,
    density_per_um: float = 50.0,
    seed: int = 0,
    oversample: int = 2,
    brightness_sigma: float = 0.3,
) -> Emitters:
    """Emitters on a built-in structure (:data:`simulators.samples.SAMPLE_KINDS`), static."""
    grid = (frame_shape[0] * oversample, frame_shape[1] * oversample)
    sample = make_sample(kind, grid, pixel_nm / oversample, seed=seed, motion=False)
    rng = np.random.default_rng(seed + 7)
    return emitters_from_density(
        sample.density(), pixel_nm / oversample, density_per_um, rng, brightness_sigma
    )


def line_pair_emitters(
    separation_nm: float = 150.0,
    length_nm: float = 3000.0,
    density_per_um: float = 50.0,
    *,
    angle_rad: float = 0.0,
    field_nm: float | tuple[float, float] = 4160.0,
    label_sigma_nm: float = 5.0,
    brightness_sigma: float = 0.3,
    rng: np.random.Generator | None = None,
) -> Emitters:
    """Two parallel lines ``separation_nm`` apart, centred on the field.

    The lines run along ``angle_rad`` (from +x towards +y); each holds a Poisson number of
    dyes (mean ``density_per_um · length``) placed uniformly along it, jittered across by a
    Gaussian of ``label_sigma_nm`` (label size).
    """
    if separation_nm < 0 or length_nm <= 0 or density_per_um < 0:
        raise ValueError("need separation >= 0, length > 0 and density_per_um >= 0")
    rng = rng or np.random.default_rng(0)
    if isinstance(field_nm, tuple | list | np.ndarray):
        field = (float(field_nm[0]), float(field_nm[1]))
    else:
        field = (float(field_nm), float(field_nm))
    direction = np.array([np.sin(angle_rad), np.cos(angle_rad)])
    normal = np.array([direction[1], -direction[0]])
    points = []
    for side in (-0.5, 0.5):
        n = rng.poisson(density_per_um * length_nm / 1000.0)
        along = rng.uniform(-length_nm / 2, length_nm / 2, n)
        across = side * separation_nm + rng.normal(0.0, label_sigma_nm, n)
        points.append(along[:, None] * direction + across[:, None] * normal)
    positions = np.concatenate(points).astype(np.float32)
    return Emitters(positions, _lognormal(len(positions), brightness_sigma, rng), field)


# --- rendering ---------------------------------------------------------------------------
def _grid_shape(field_nm: tuple[float, float], pixel_nm: float) -> tuple[int, int]:
    return (max(1, round(field_nm[0] / pixel_nm)), max(1, round(field_nm[1] / pixel_nm)))


def histogram_points(
    positions_nm: np.ndarray, weights: np.ndarray, shape: tuple[int, int], pixel_nm: float
) -> np.ndarray:
    """Sum of the weights of the points inside each pixel (origin at the grid centre)."""
    iy = np.floor(positions_nm[:, 0] / pixel_nm + shape[0] / 2).astype(np.int64)
    ix = np.floor(positions_nm[:, 1] / pixel_nm + shape[1] / 2).astype(np.int64)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = np.bincount(iy[ok] * shape[1] + ix[ok], np.asarray(weights)[ok], shape[0] * shape[1])
    return flat.reshape(shape).astype(np.float32)


class _Splat:
    """Bilinear (cloud-in-cell) deposit of fixed points on a grid, for many weight vectors."""

    def __init__(self, positions_nm: np.ndarray, shape: tuple[int, int], pixel_nm: float):
        fy = positions_nm[:, 0] / pixel_nm + (shape[0] - 1) / 2
        fx = positions_nm[:, 1] / pixel_nm + (shape[1] - 1) / 2
        y0, x0 = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
        dy, dx = fy - y0, fx - x0
        index, share, owner = [], [], []
        for oy, ox, s in (
            (0, 0, (1 - dy) * (1 - dx)),
            (0, 1, (1 - dy) * dx),
            (1, 0, dy * (1 - dx)),
            (1, 1, dy * dx),
        ):
            yy, xx = y0 + oy, x0 + ox
            ok = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
            index.append(yy[ok] * shape[1] + xx[ok])
            share.append(s[ok])
            owner.append(np.flatnonzero(ok))
        self.index = np.concatenate(index)
        self.share = np.concatenate(share)
        self.owner = np.concatenate(owner)
        self.shape = shape

    def __call__(self, weights: np.ndarray, out: np.ndarray) -> None:
        """Deposit ``weights`` (N,) into ``out`` (H, W)."""
        size = self.shape[0] * self.shape[1]
        deposit = np.bincount(self.index, self.share * weights[self.owner], size)
        out[...] = deposit.reshape(self.shape)


def psf_transfer(
    shape: tuple[int, int], pixel_nm: float, na: float, emission_nm: float, psf: str
) -> np.ndarray:
    """rfft-layout transfer of the PSF on a grid, with the bilinear deposit divided out."""
    if psf not in PSF_KINDS:
        raise ValueError(f"unknown psf {psf!r} (choose from {', '.join(PSF_KINDS)})")
    fy = np.fft.fftfreq(shape[0], d=pixel_nm)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=pixel_nm)[None, :]
    if psf == "airy":
        otf = otf_2d(shape, pixel_nm, na, emission_nm)
    else:
        sigma = widefield_fwhm_nm(na, emission_nm) / FWHM_PER_SIGMA
        otf = np.exp(-2 * np.pi**2 * sigma**2 * (fy**2 + fx**2))
    deposit = (np.sinc(fy * pixel_nm) * np.sinc(fx * pixel_nm)) ** 2  # triangle kernel
    return (otf / deposit).astype(np.float32)


# --- bursts ------------------------------------------------------------------------------
@dataclass
class Burst:
    """Camera frames of a blinking burst and its ground truth.

    ``on_fraction[t, i]`` is the fraction of frame ``t``'s exposure emitter ``i`` was on;
    ``emitter_photons[i]`` the photons it emits in a frame when on the whole exposure;
    ``truth_density`` the time-averaged photons per frame of the emitters histogrammed on a
    ``truth_pixel_nm`` grid over the field (before the PSF).
    """

    frames: np.ndarray
    emitter_positions_nm: np.ndarray
    on_fraction: np.ndarray
    emitter_photons: np.ndarray
    truth_density: np.ndarray
    truth_pixel_nm: float
    pixel_nm: float
    field_nm: tuple[float, float]
    exposure_ms: float
    power_mw: float
    background_photons: float
    final_state: np.ndarray
    camera: CameraModel = field(default_factory=CameraModel)

    def mean_emitter_photons(self) -> np.ndarray:
        """Time-averaged photons per frame of each emitter."""
        return self.emitter_photons * self.on_fraction.mean(axis=0)

    def truth_image(self, pixel_nm: float, blur_nm: float | None = None) -> np.ndarray:
        """Time-averaged emitter photons per frame on a ``pixel_nm`` grid over the field.

        ``blur_nm`` (a FWHM) blurs it with a Gaussian, e.g. to a target resolution for SSIM.
        """
        if pixel_nm <= 0 or (blur_nm is not None and blur_nm < 0):
            raise ValueError(f"need pixel_nm > 0 and blur_nm >= 0, got {pixel_nm}, {blur_nm}")
        shape = _grid_shape(self.field_nm, pixel_nm)
        image = histogram_points(
            self.emitter_positions_nm, self.mean_emitter_photons(), shape, pixel_nm
        )
        if blur_nm:
            image = ndimage.gaussian_filter(image, blur_nm / FWHM_PER_SIGMA / pixel_nm)
        return image

    def photon_frames(self) -> np.ndarray:
        """The frames converted back to (noisy) photons per pixel with the camera's constants."""
        return self.camera.adu_to_photons(self.frames, self.exposure_ms)


def _render_chunk(
    weights: np.ndarray, splat: _Splat, transfer: np.ndarray, oversample: int
) -> np.ndarray:
    """Expected photons per camera pixel (C, H, W) for per-frame emitter photons (C, N)."""
    fine = np.empty((len(weights), *splat.shape), np.float32)
    for c, w in enumerate(weights):
        splat(w, fine[c])
    spectrum = sfft.rfft2(fine, workers=-1)
    spectrum *= transfer
    blurred = sfft.irfft2(spectrum, s=splat.shape, workers=-1).astype(np.float32, copy=False)
    return bin_to_camera(np.clip(blurred, 0.0, None, out=blurred), oversample)


def simulate_burst(
    emitters: Emitters,
    n_frames: int,
    power_mw: float = 20.0,
    exposure_ms: float = 10.0,
    *,
    pixel_nm: float = 65.0,
    na: float = 1.49,
    emission_nm: float = 510.0,
    camera: CameraModel | None = None,
    rng: np.random.Generator | None = None,
    psf: str = "airy",
    dye: SwitchingDye | None = None,
    activation_mw: float = 0.0,
    background_per_ms_mw: float = 0.05,
    frame_interval_ms: float | None = None,
    gated: bool = True,
    oversample: int = 2,
    truth_pixel_nm: float | None = None,
    initial_state: np.ndarray | None = None,
    chunk: int = 8,
) -> Burst:
    """A burst of ``n_frames`` uint16 camera frames of blinking ``emitters``.

    Light is on during each exposure; between frames (``frame_interval_ms``, default
    exposure + rolling readout) the dyes evolve in the dark if the laser is ``gated``
    (thermal return only, no bleaching), else under the same light. Dyes start in the
    stationary state under the light unless ``initial_state`` (a previous burst's
    ``final_state``) is given. Background is ``background_per_ms_mw · P · exposure`` photons
    per camera pixel. The fine rendering grid is ``pixel_nm / oversample``; the truth grid
    defaults to ``pixel_nm / 5``.
    """
    if n_frames < 1 or exposure_ms <= 0 or power_mw < 0 or oversample < 1 or chunk < 1:
        raise ValueError(
            f"need n_frames >= 1, exposure > 0, power >= 0, oversample >= 1, chunk >= 1 "
            f"(got {n_frames}, {exposure_ms}, {power_mw}, {oversample}, {chunk})"
        )
    camera = camera or CameraModel()
    rng = rng or np.random.default_rng(0)
    dye = dye or SwitchingDye()
    shape = _grid_shape(emitters.field_nm, pixel_nm)
    interval = camera.min_frame_interval_ms(exposure_ms, shape[0])
    interval = interval if frame_interval_ms is None else frame_interval_ms
    if interval < exposure_ms:
        raise ValueError(f"frame interval {interval} ms is shorter than the exposure")
    light = dye.rates(power_mw, activation_mw)
    gap = dye.rates(0.0) if gated else light
    n = len(emitters)
    if initial_state is None:
        states = stationary_states(n, light, rng)
    elif np.shape(initial_state) != (n,):
        raise ValueError(f"initial_state needs {n} states, got shape {np.shape(initial_state)}")
    else:
        states = np.asarray(initial_state, np.int8)
    on_fraction = np.empty((n_frames, n), np.float32)
    for t in range(n_frames):
        on_fraction[t], states = integrate_exposure(states, exposure_ms, light, rng)
        states = jump(states, interval - exposure_ms, gap, rng)

    photons_on = emitters.brightness * np.float32(dye.photons_per_ms_mw * power_mw * exposure_ms)
    fine_pixel = pixel_nm / oversample
    fine_shape = (shape[0] * oversample, shape[1] * oversample)
    splat = _Splat(emitters.positions_nm, fine_shape, fine_pixel)
    transfer = psf_transfer(fine_shape, fine_pixel, na, emission_nm, psf)
    background = background_per_ms_mw * power_mw * exposure_ms
    frames = np.empty((n_frames, *shape), np.uint16)
    for t0 in range(0, n_frames, chunk):
        weights = on_fraction[t0 : t0 + chunk] * photons_on
        expected = _render_chunk(weights, splat, transfer, oversample)
        expected += np.float32(background)
        for c, image in enumerate(expected):
            camera.expose(image, exposure_ms, rng, out=frames[t0 + c])

    truth_pixel = truth_pixel_nm or pixel_nm / 5.0
    mean_photons = photons_on * on_fraction.mean(axis=0)
    truth = histogram_points(
        emitters.positions_nm,
        mean_photons,
        _grid_shape(emitters.field_nm, truth_pixel),
        truth_pixel,
    )
    return Burst(
        frames=frames,
        emitter_positions_nm=emitters.positions_nm,
        on_fraction=on_fraction,
        emitter_photons=photons_on,
        truth_density=truth,
        truth_pixel_nm=truth_pixel,
        pixel_nm=pixel_nm,
        field_nm=emitters.field_nm,
        exposure_ms=exposure_ms,
        power_mw=power_mw,
        background_photons=background,
        final_state=states,
        camera=camera,
    )


def bleached_fraction(states: np.ndarray) -> float:
    """Fraction of dyes in the bleached state."""
    return float(np.mean(np.asarray(states) == BLEACHED)) if np.size(states) else 0.0


__all__ = [
    "BlinkRates",
    "Burst",
    "Emitters",
    "SwitchingDye",
    "bleached_fraction",
    "emitters_from_density",
    "histogram_points",
    "line_pair_emitters",
    "psf_transfer",
    "simulate_burst",
    "structure_emitters",
]
