"""Training pairs for the pattern-conditioned SIM model, with no shortcut to a prior.

Each pair simulates a 9-frame SIM set of a random microscope and sample, measures its pattern
blind with the classical estimator (as on real data) and gives the model the band components
of :mod:`srlive.recon.learned.pattern_input`. What is randomised, and why:

* **samples**: 60 % prior-free (:mod:`simulators.sim_fields`: random arcs, points and
  clusters, rings and discs of any size, stars, power-law textures; spirals held out), the
  rest the simulator's biological structures, so no shape or density can be guessed;
* **geometry**: λ/(2NA) from 1.5 to 3.5 camera pixels and a fringe frequency from 0.7 to 1.0
  of 2NA/λ (NA 1.2-1.49, emission 480-680 nm), the estimator told a nominal period up to 2 %
  off; the geometry is an input plane;
* **optics and pattern**: a share of pairs defocused (a numerical pupil, up to 400 nm) and
  with out-of-focus haze, while the band decomposition assumes the in-focus OTF; modulation
  0.3-1.0 per angle, phase-step errors, the phases of an angle in a random order, a random
  pattern orientation;
* **camera**: gain, read noise, background and hot pixels; light from a few to thousands of
  photons at the brightest pixel;
* **no pattern** (12 % of pairs): each angle's frames replaced by their mean, the ablation
  input (one-phase-per-angle sets: one widefield image three times, the mean of three
  widefield exposures, so dose and noise are the set's).

Targets follow what was measured: the ground truth blurred to the SIM limit of the bands the
estimator found (:func:`measured_sim_otf`: in every direction the edge of the union of the
widefield support and its copies shifted by each found ±k; the widefield limit when no fringe
was found, as for the no-pattern pairs and for sets too dark to measure), plus the haze's
widefield image, on the 2× grid, in the inputs' units. So the model is never asked for
resolution its input does not carry: super-resolution has to come from the side bands. Its
predicted error, though, is trained against the microscope's full SIM limit (a second target):
where the pattern was not measured the error it predicts includes the resolution it could
not recover, and the confidence built on it falls there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from simulators.camera_model import CameraModel
from simulators.illumination import IlluminationPattern
from simulators.imaging import FringeCache, expected_from_cache
from simulators.optics import blur, otf_2d
from simulators.samples import make_sample
from simulators.sim_fields import SIM_TRAIN_PRIOR_FREE, prior_free_density
from srlive.recon.learned.pattern_input import (
    BandGeometry,
    band_features,
    normalise_bands,
    remove_pattern,
)
from srlive.recon.learned.single_phase_input import single_phase_features

if TYPE_CHECKING:
    from srlive.recon.optics import SIMOptics

BIOLOGICAL = ("microtubules", "vesicles", "mitochondria", "beads")
MARGIN_PX = 12  # camera pixels simulated around a field (the reconstruction fades its border)


@dataclass(frozen=True)
class PatternSimSettings:
    """Ranges the pattern-conditioned pairs are drawn from (stored with the weights)."""

    structures: tuple[str, ...] = BIOLOGICAL
    prior_free: tuple[str, ...] = SIM_TRAIN_PRIOR_FREE
    prior_free_fraction: float = 0.6
    psf_px: tuple[float, float] = (1.5, 3.5)  # λ/(2NA) in camera pixels
    frequency: tuple[float, float] = (0.7, 1.0)  # fringe frequency / (2NA/λ)
    na: tuple[float, float] = (1.2, 1.49)
    emission_nm: tuple[float, float] = (480.0, 680.0)
    nominal_period_error: float = 0.02
    modulation: tuple[float, float] = (0.3, 1.0)
    phase_error_rad: float = 0.15
    angle_jitter_deg: float = 1.0
    peak_photons: tuple[float, float] = (8.0, 2000.0)  # log-uniform, brightest camera pixel
    background_photons: tuple[float, float] = (0.0, 20.0)
    defocus_fraction: float = 0.3
    defocus_nm: tuple[float, float] = (50.0, 400.0)
    haze_fraction: float = 0.4
    haze: tuple[float, float] = (0.1, 1.5)  # out-of-focus light relative to in-focus mean
    read_noise_e: tuple[float, float] = (0.8, 3.0)
    e_per_adu: tuple[float, float] = (0.25, 2.0)
    hot_pixel_fraction: float = 2e-4
    no_pattern_fraction: float = 0.12
    field_sizes: tuple[int, ...] = (96, 128)


def microscope_settings(
    optics: SIMOptics, field_sizes: tuple[int, ...] | None = None, spread: float = 0.03
) -> PatternSimSettings:
    """Pairs for one microscope: its NA, emission, geometry (±``spread``) and camera gain."""
    if optics.nominal is None:
        raise ValueError("training for one microscope needs its pattern: nominal.period_nm")
    resolution = optics.emission_nm / (2 * optics.na)
    psf, freq = resolution / optics.pixel_nm, resolution / optics.nominal.period_nm
    gain = optics.gain_e_per_adu
    settings = replace(
        PatternSimSettings(),
        na=(optics.na, optics.na),
        emission_nm=(optics.emission_nm, optics.emission_nm),
        psf_px=(psf * (1 - spread), psf * (1 + spread)),
        frequency=(freq * (1 - spread), freq * (1 + spread)),
        e_per_adu=(gain * 0.8, gain * 1.2),
    )
    return replace(settings, field_sizes=field_sizes) if field_sizes else settings


def sim_limit_otf(
    shape: tuple[int, int], pixel_nm: float, na: float, emission_nm: float, period_nm: float
) -> np.ndarray:
    """Ideal 2D-SIM OTF: the widefield OTF stretched to cutoff 2NA/λ + 1/period."""
    effective = 2 * na / (2 * na / emission_nm + 1.0 / period_nm)
    return otf_2d(shape, pixel_nm, na, effective)


def measured_sim_otf(
    shape: tuple[int, int],
    pixel_nm: float,
    na: float,
    emission_nm: float,
    wavevectors: list[tuple[float, float]],
) -> np.ndarray:
    """The SIM limit of the bands measured: an ideal OTF reaching, in every direction, the
    edge of the union of the widefield support and its copies shifted by ±k of each angle
    whose fringe was found (the widefield OTF itself when none was)."""
    cutoff = 2 * na / emission_nm
    fy = np.fft.fftfreq(shape[0], d=pixel_nm)[:, None]
    fx = np.fft.rfftfreq(shape[1], d=pixel_nm)[None, :]
    rho = np.hypot(fy, fx)
    theta = np.arctan2(fy, fx)
    reach = np.full(rho.shape, cutoff)
    for ky, kx in wavevectors:
        k = np.hypot(ky, kx)
        off = theta - np.arctan2(ky, kx)
        along, across = k * np.abs(np.cos(off)), k * np.abs(np.sin(off))
        inside = across < cutoff
        edge = along + np.sqrt(np.clip(cutoff**2 - across**2, 0.0, None))
        reach = np.where(inside, np.maximum(reach, edge), reach)
    r = np.clip(rho / reach, 0.0, 1.0)
    return ((2 / np.pi) * (np.arccos(r) - r * np.sqrt(1 - r * r))).astype(np.float32)


def draw_geometry(rng: np.random.Generator, s: PatternSimSettings) -> BandGeometry:
    na = rng.uniform(*s.na)
    emission = rng.uniform(*s.emission_nm)
    resolution = emission / (2 * na)
    pixel = resolution / rng.uniform(*s.psf_px)
    period = resolution / rng.uniform(*s.frequency)
    return BandGeometry(float(pixel), float(na), float(emission), float(period))


def sim_patterns(
    rng: np.random.Generator, period_nm: float, s: PatternSimSettings
) -> list[IlluminationPattern]:
    """Nine patterns, angle-major; each angle's phases in a random order."""
    offset = rng.uniform(0, np.pi)
    patterns = []
    for a in range(3):
        angle = offset + a * np.pi / 3 + np.radians(rng.normal(0, s.angle_jitter_deg))
        k = (np.sin(angle) / period_nm, np.cos(angle) / period_nm)
        m = rng.uniform(*s.modulation)
        start = rng.uniform(0, 2 * np.pi)
        for p in rng.permutation(3):
            phase = start + 2 * np.pi * p / 3 + rng.normal(0, s.phase_error_rad)
            patterns.append(IlluminationPattern(((k[0], k[1], m, phase),), 1.0))
    return patterns


def _density(
    rng: np.random.Generator, shape: tuple[int, int], pixel_nm: float, s: PatternSimSettings
) -> tuple[np.ndarray, str]:
    seed = int(rng.integers(2**31))
    if rng.random() < s.prior_free_fraction:
        kind = str(rng.choice(s.prior_free))
        density = prior_free_density(kind, shape, pixel_nm, seed, rng.uniform(0.3, 2.0))
    else:
        kind = str(rng.choice(s.structures))
        density = make_sample(kind, shape, pixel_nm, seed=seed, motion=False).density()
    return density.astype(np.float32), kind


def _haze(density: np.ndarray, pixel_nm: float, geometry: BandGeometry, rng) -> np.ndarray:
    """Out-of-focus light: the density blurred several PSF widths (a defocused image)."""
    from scipy import ndimage

    sigma_nm = rng.uniform(3, 8) * geometry.emission_nm / (2 * geometry.na)
    haze = ndimage.gaussian_filter(density, sigma_nm / pixel_nm, mode="wrap")
    return haze * np.float32(density.mean() / max(float(haze.mean()), 1e-12))


def pattern_pair(
    size: int, seed: int, settings: PatternSimSettings | None = None, inputs: str = "sim-bands"
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One pair: input (planes, 2·size, 2·size), targets (2, 2·size, 2·size).

    Target 0 is what the image is trained toward (the SIM limit of the bands found); target 1
    what its predicted error is trained against: the microscope's SIM limit, what a user
    wants from the set. An output without the pattern is widefield-limited, as it must be,
    and its predicted error says how far that is from SIM.

    ``inputs``: ``sim-bands`` (9 frames, :data:`BAND_CHANNELS`) or ``single-phase`` (3 frames,
    one random phase per angle, :data:`SINGLE_PHASE_CHANNELS`; without a pattern the same
    widefield frame three times).
    """
    if inputs not in ("sim-bands", "single-phase"):
        raise ValueError(f"unknown pattern inputs {inputs!r}")
    s = settings or PatternSimSettings()
    rng = np.random.default_rng(seed)
    geometry = draw_geometry(rng, s)
    full = size + 2 * MARGIN_PX
    hi_nm = geometry.pixel_nm / 2
    hi = (2 * full, 2 * full)
    density, kind = _density(rng, hi, hi_nm, s)
    defocus = rng.uniform(*s.defocus_nm) if rng.random() < s.defocus_fraction else 0.0
    otf = otf_2d(hi, hi_nm, geometry.na, geometry.emission_nm, defocus_nm=defocus)
    cache = FringeCache(density, otf, 2, hi_nm)
    peak = float(np.exp(rng.uniform(*np.log(s.peak_photons))))
    scale = peak / max(float(np.percentile(cache.base, 99.9)), 1e-6)
    haze_level = rng.uniform(*s.haze) if rng.random() < s.haze_fraction else 0.0
    haze_hi = _haze(density, hi_nm, geometry, rng) * np.float32(haze_level)
    haze_cam = FringeCache(haze_hi, otf, 2, hi_nm).base if haze_level else 0.0
    background = rng.uniform(*s.background_photons)
    camera = CameraModel(
        read_noise_e=rng.uniform(*s.read_noise_e), e_per_adu=rng.uniform(*s.e_per_adu)
    )
    patterns = sim_patterns(rng, geometry.period_nm, s)
    single = inputs == "single-phase"
    if single:  # one phase per angle
        patterns = [patterns[3 * a + int(rng.integers(3))] for a in range(3)]

    def expose(pattern: IlluminationPattern) -> np.ndarray:
        expected = expected_from_cache(cache, pattern, scale)
        return camera.expose(expected + haze_cam * np.float32(scale) + background, 10.0, rng)

    frames = np.stack([expose(p) for p in patterns]).astype(np.float32)
    frames -= np.float32(camera.offset_adu)
    hot = rng.random(frames.shape[-2:]) < s.hot_pixel_fraction
    hot_adu = rng.uniform(100, 3000, int(hot.sum())).astype(np.float32)
    frames[:, hot] += hot_adu
    no_pattern = rng.random() < s.no_pattern_fraction
    if no_pattern and single:  # the ablation input: one widefield image three times, made of
        # three widefield exposures (the set's dose and noise, no pattern)
        flat = np.mean([expose(IlluminationPattern()) for _ in range(3)], axis=0)
        widefield = flat.astype(np.float32) - np.float32(camera.offset_adu)
        widefield[hot] += hot_adu
        frames = np.repeat(widefield[None], 3, axis=0)
    elif no_pattern:
        frames = remove_pattern(frames)
    told = BandGeometry(
        geometry.pixel_nm,
        geometry.na,
        geometry.emission_nm,
        geometry.period_nm * (1 + rng.uniform(-1, 1) * s.nominal_period_error),
    )
    if single:
        features, fringe = single_phase_features(frames, told)
        found = [k for k, m in zip(fringe.k, fringe.modulation, strict=True) if m > 0]
    else:
        features, params = band_features(frames, told)
        found = [k for k, m in zip(params.k, params.modulation, strict=True) if m > 0]
    inner = slice(2 * MARGIN_PX, 2 * (MARGIN_PX + size))
    core = frames[:, MARGIN_PX : MARGIN_PX + size, MARGIN_PX : MARGIN_PX + size]
    norm = max(float(np.percentile(core.mean(axis=0), 99.5)), 1.0)
    x = normalise_bands(features[:, inner, inner], norm)
    in_focus = otf_2d(hi, hi_nm, geometry.na, geometry.emission_nm)
    haze_image = blur(haze_hi, in_focus) if haze_level else 0.0
    found_otf = measured_sim_otf(hi, hi_nm, geometry.na, geometry.emission_nm, found)
    limit_otf = sim_limit_otf(hi, hi_nm, geometry.na, geometry.emission_nm, geometry.period_nm)
    adu = np.float32(camera.qe / camera.e_per_adu / norm)
    targets = [
        ((blur(density, otf) + haze_image) * np.float32(scale) + np.float32(background)) * adu
        for otf in (found_otf, limit_otf)
    ]
    info = {
        "kind": kind,
        "peak_photons": peak,
        "norm_adu": norm,
        "seed": seed,
        "no_pattern": no_pattern,
        "geometry": geometry,
        "angles_found": len(found),
        "frames": core,  # the raw set (offset-free ADU) the crop's input was made from
    }
    y = np.stack(targets)[:, inner, inner].astype(np.float32)
    return x.astype(np.float32), y, info
