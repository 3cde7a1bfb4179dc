"""Training pairs for ``dl-srrf5``: five raw frames of blinking dyes -> SR on the 2x grid.

Each pair is a short burst from the project's fluctuation physics (two-state dyes with
power-dependent switching, :mod:`simulators.blinking`; the widefield optics and sCMOS camera
of the other models) on a random structure: a biological one (:mod:`simulators.samples`) or,
for most pairs, a prior-free one (:mod:`simulators.fluctuation_fields`: random arcs, points,
rings, stars; spirals are held out). Brightness, on-fraction and switching rates (excitation
power and thermal return rate), background, read noise and PSF width (emission wavelength)
are drawn per pair.

Target: the image of what fluctuates, never a reconstruction. Dyes that blink contribute
their photons averaged over the five frames, blurred by a Gaussian of FWHM = widefield FWHM
/ ``sr_factor`` (1.25 by default: the width at which a perfect 5-frame image best matches
the structure, measured on validation bursts, as the model card says; √2, the squared PSF's
width that second-order statistics reach with every dye seen, leaves holes where dyes stayed
dark); a dye that never switched on during the set is absent, as it is from the data. Dyes
whose frames do not fluctuate are absent too (``still="absent"``, the default), as they are
from a SOFI cumulant or a TAC2 image: ``static`` dyes (one of two structures in ``mixed``
pairs) whose frames carry shot noise but no fluctuation, and the blinking dyes of ``frozen``
pairs, whose five frames are replaced by their mean (the must-show ablation's kind of input;
blinking dyes so that the mean's uneven brightness is no cue). The camera background stays
in the target. So whatever the network shows must come from what fluctuates.
``still="widefield"`` gives those dyes their widefield image instead (the first design: the
network learnt to denoise and deconvolve widefield and kept 92 % of its gain without
fluctuations; the model card gives the measured comparison). eSRRF of a long burst was not
used as the target: its intensity is non-linear in the dye density (sensitivity power, RGC
weighting), so a network trained on it learns those artefacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from simulators.blinking import SwitchingDye, integrate_exposure, jump, stationary_states
from simulators.camera_model import CameraModel, bin_to_camera
from simulators.fluctuation import FWHM_PER_SIGMA, Emitters, histogram_points, structure_emitters
from simulators.fluctuation_fields import prior_free_emitters
from simulators.optics import blur, otf_2d, widefield_fwhm_nm
from srlive.recon.learned.geometry import CAMERA_NM, EMISSION_NM, NA

FRAMES = 5
SR_FACTOR = 1.25  # target FWHM = widefield FWHM / this (dyes that fluctuate; see the card)
STILL_TARGETS = ("absent", "widefield")  # what the target shows of dyes that do not fluctuate
HI_NM = CAMERA_NM / 2
EXPOSURE_MS = 10.0
TRAIN_BIO = ("microtubules", "vesicles", "mitochondria", "beads")
TRAIN_PRIOR_FREE = ("segments", "points", "rings", "stars")
HELD_OUT_PRIOR_FREE = ("spirals",)  # a generator never used in training
HELD_OUT_SEED_BASE = 3_000_000_000  # evaluation seeds; training streams stay far below


@dataclass(frozen=True)
class BurstSimSettings:
    """Ranges the ``dl-srrf5`` pairs are drawn from (log-uniform for scale factors)."""

    structures: tuple[str, ...] = TRAIN_BIO
    prior_free: tuple[str, ...] = TRAIN_PRIOR_FREE
    prior_free_fraction: float = 0.65  # pairs on prior-free structures
    frames: int = FRAMES
    power_mw: tuple[float, float] = (5.0, 60.0)  # on-fraction ~0.5 .. 0.1 (default dye)
    k_on_scale: tuple[float, float] = (0.5, 2.0)  # factor on the dye's thermal return rate
    photons_scale: tuple[float, float] = (0.2, 3.0)  # factor on the dye's brightness
    density_per_um: tuple[float, float] = (20.0, 80.0)  # labelling of biological structures
    prior_free_density: tuple[float, float] = (0.3, 2.0)  # factor on prior-free counts
    background_photons: tuple[float, float] = (0.0, 40.0)  # per camera pixel and frame
    read_noise_e: tuple[float, float] = (1.0, 3.0)
    emission_nm: tuple[float, float] = (470.0, 560.0)  # PSF width range (±9 % around 510)
    sr_factor: float = SR_FACTOR  # widefield FWHM / target FWHM where the dyes fluctuate
    still: str = "absent"  # dyes that do not fluctuate: absent, or their widefield image
    static_fraction: float = 0.15  # pairs whose dyes do not blink (target: widefield)
    frozen_fraction: float = 0.1  # blinking pairs given as 5 copies of their mean (widefield)
    mixed_fraction: float = 0.2  # pairs with a blinking and a static structure side by side
    field_sizes: tuple[int, ...] = (64, 128)


def sr_fwhm_nm(
    emission_nm: float = EMISSION_NM, na: float = NA, factor: float = SR_FACTOR
) -> float:
    """FWHM of the target's blur where dyes fluctuate: the widefield FWHM over ``factor``."""
    return widefield_fwhm_nm(na, emission_nm) / factor


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _structure(
    kind: str, size: int, seed: int, rng: np.random.Generator, s: BurstSimSettings
) -> Emitters:
    field = (size * CAMERA_NM, size * CAMERA_NM)
    if kind in s.prior_free or kind in HELD_OUT_PRIOR_FREE:
        density = _log_uniform(rng, s.prior_free_density)
        n_kinds = 1 + int(rng.random() < 0.4)  # sometimes two generators overlaid
        kinds = tuple(rng.choice(s.prior_free, n_kinds, replace=False)) if n_kinds > 1 else kind
        return prior_free_emitters(kinds, field, seed, density)
    per_um = rng.uniform(*s.density_per_um)
    return structure_emitters(kind, (size, size), CAMERA_NM, per_um, seed=seed % 2**31)


def on_fractions(
    n: int, frames: int, dye: SwitchingDye, power_mw: float, rows: int, rng: np.random.Generator
) -> np.ndarray:
    """(frames, n) fraction of each exposure each dye spent on (gated laser between frames)."""
    light, dark = dye.rates(power_mw), dye.rates(0.0)
    gap = CameraModel().readout_ms(rows)
    states = stationary_states(n, light, rng)
    out = np.empty((frames, n), np.float32)
    for t in range(frames):
        out[t], states = integrate_exposure(states, EXPOSURE_MS, light, rng)
        states = jump(states, gap, dark, rng)
    return out


def render_frames(
    positions_nm: np.ndarray,
    photons: np.ndarray,
    size: int,
    emission_nm: float,
    background: float,
    camera: CameraModel,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noisy frames (T, size, size) in ADU minus offset from per-frame dye photons (T, N)."""
    fine = (2 * size, 2 * size)
    stack = np.stack([histogram_points(positions_nm, w, fine, HI_NM) for w in photons])
    spectrum = sfft.rfft2(stack, workers=-1) * otf_2d(fine, HI_NM, NA, emission_nm)
    expected = np.clip(sfft.irfft2(spectrum, s=fine, workers=-1), 0, None).astype(np.float32)
    expected = bin_to_camera(expected, 2) + np.float32(background)
    frames = np.stack([camera.expose(e, EXPOSURE_MS, rng) for e in expected])
    return frames.astype(np.float32) - np.float32(camera.offset_adu)


def blurred_truth(
    positions_nm: np.ndarray, photons: np.ndarray, size: int, fwhm_nm: float
) -> np.ndarray:
    """Photons per 2x-grid pixel of dyes (mean photons each) blurred by a Gaussian FWHM."""
    hist = histogram_points(positions_nm, photons, (2 * size, 2 * size), HI_NM)
    return ndimage.gaussian_filter(hist, fwhm_nm / FWHM_PER_SIGMA / HI_NM).astype(np.float32)


def _dyes(
    kind: str, size: int, seed: int, rng: np.random.Generator, s: BurstSimSettings
) -> tuple[Emitters, np.ndarray, str]:
    """The pair's dyes, whether each blinks, and the pair's regime."""
    emitters = _structure(kind, size, seed, rng, s)
    u = rng.random()
    if u < s.static_fraction:
        return emitters, np.zeros(len(emitters), bool), "static"
    if u < s.static_fraction + s.frozen_fraction:
        return emitters, np.ones(len(emitters), bool), "frozen"  # averaged after imaging
    if u < s.static_fraction + s.frozen_fraction + s.mixed_fraction:
        pool = s.prior_free + s.structures
        other = _structure(str(rng.choice(pool)), size, seed + 1, rng, s)
        positions = np.concatenate([emitters.positions_nm, other.positions_nm])
        brightness = np.concatenate([emitters.brightness, other.brightness])
        blinks = np.r_[np.ones(len(emitters), bool), np.zeros(len(other), bool)]
        return Emitters(positions, brightness, emitters.field_nm), blinks, "mixed"
    return emitters, np.ones(len(emitters), bool), "blinking"


def fluctuation_pair(
    size: int,
    seed: int,
    settings: BurstSimSettings = BurstSimSettings(),
    kind: str | None = None,
    peak_photons: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One (input (T, size, size), target (1, 2·size, 2·size), info) pair, float32.

    Inputs are offset-subtracted frames divided by the 99.5th percentile of their mean (as
    :class:`~srlive.recon.learned.infer.LearnedReconstructor` normalises); the target is in the same
    units (ADU per camera-pixel area, background included). ``peak_photons`` fixes the
    photons of a dye on for a whole frame instead of drawing them.
    """
    rng = np.random.default_rng(seed)
    s = settings
    if kind is None:
        pool = s.prior_free if rng.random() < s.prior_free_fraction else s.structures
        kind = str(rng.choice(pool))
    emitters, blinks, regime = _dyes(kind, size, seed, rng, s)
    power = _log_uniform(rng, s.power_mw)
    dye = SwitchingDye(k_on_thermal_per_s=11.0 * _log_uniform(rng, s.k_on_scale))
    on = on_fractions(len(emitters), s.frames, dye, power, size, rng)
    on[:, ~blinks] = dye.on_fraction(power)  # static dyes: the same mean, no fluctuation
    per_frame = peak_photons or dye.photons_per_ms_mw * power * EXPOSURE_MS
    if peak_photons is None:
        per_frame *= _log_uniform(rng, s.photons_scale)
    photons = on * (emitters.brightness * np.float32(per_frame))
    emission = rng.uniform(*s.emission_nm)
    background = rng.uniform(*s.background_photons)
    camera = CameraModel(read_noise_e=rng.uniform(*s.read_noise_e))
    frames = render_frames(emitters.positions_nm, photons, size, emission, background, camera, rng)
    if regime == "frozen":  # no temporal information at all: the frames' mean, repeated
        frames[:] = frames.mean(axis=0)
    mean = photons.mean(axis=0)
    positions = emitters.positions_nm
    fluctuates = blinks & (regime != "frozen")
    fwhm = sr_fwhm_nm(emission, NA, s.sr_factor)
    target = blurred_truth(positions[fluctuates], mean[fluctuates], size, fwhm)
    if s.still not in STILL_TARGETS:
        raise ValueError(f"still must be one of {STILL_TARGETS}, got {s.still!r}")
    if s.still == "widefield" and (~fluctuates).any():
        still = ~fluctuates
        static = histogram_points(positions[still], mean[still], target.shape, HI_NM)
        target += blur(static, otf_2d(target.shape, HI_NM, NA, emission))
    adu = camera.qe / camera.e_per_adu
    target = (4 * target + np.float32(background)) * np.float32(adu)  # per camera-pixel area
    norm = max(float(np.percentile(frames.mean(axis=0), 99.5)), 1.0)
    info = {
        "kind": kind,
        "regime": regime,
        "power_mw": power,
        "on_fraction": dye.on_fraction(power),
        "emission_nm": emission,
        "norm_adu": norm,
        "seed": seed,
        "dyes": len(emitters),
    }
    x = (frames / np.float32(norm)).astype(np.float32)
    return x, (target / np.float32(norm))[None].astype(np.float32), info
