"""Held-out evaluation fields (raw data at several light levels and their targets) and the
scores every evaluation uses (normalised PSNR and SSIM after an affine fit, FRC resolution).

Fields use sample seeds outside the training streams and pattern orientations of their own;
light levels are fractions of the default acquisition (20 mW × 10 ms with the simulator's
default brightness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from simulators.camera_model import CameraModel
from simulators.illumination import IlluminationPattern
from simulators.imaging import FringeCache, expected_from_cache
from simulators.optics import blur, otf_2d
from simulators.samples import make_sample
from srlive.learn.data import EMISSION_NM, HELD_OUT_STRUCTURES, HI_NM, NA, PERIOD_NM
from srlive.learn.sim_pairs import sim_limit_otf
from srlive.recon.resolution import frc_resolution_nm
from srlive.recon.similarity import psnr, ssim

DEFAULT_SCALE = 20.0 * 10.0 * 20.0  # photons per unit density per camera pixel at 100 %
EVAL_STRUCTURES = ("microtubules", "vesicles", "mitochondria", *HELD_OUT_STRUCTURES)
EVAL_SEED_BASE = 900_000_000  # far from every training stream


@dataclass
class Field:
    """One held-out field: raw data at several light levels and its targets."""

    kind: str
    sr_target: np.ndarray
    wf_target: np.ndarray
    sim9: dict[float, np.ndarray]  # light fraction -> (9, H, W) ADU
    widefield: dict[float, np.ndarray]  # light fraction -> (H, W) ADU
    # light fraction -> (3, H, W) ADU: three more widefield exposures, the dose of a
    # one-phase-per-angle set without its pattern (the 3-frame model's ablation input)
    widefield3: dict[float, np.ndarray] = field(default_factory=dict)


def _patterns(rng: np.random.Generator, period_nm: float) -> list[IlluminationPattern]:
    offset = rng.uniform(0, np.pi)
    patterns = []
    for a in range(3):
        angle = offset + a * np.pi / 3
        k = (np.sin(angle) / period_nm, np.cos(angle) / period_nm)
        for p in range(3):
            patterns.append(IlluminationPattern(((k[0], k[1], 0.8, 2 * np.pi * p / 3 + a),), 1.0))
    return patterns


def make_field(
    kind: str,
    size: int,
    seed: int,
    fractions: Sequence[float],
    camera: CameraModel = CameraModel(),
    period_nm: float = PERIOD_NM,
    density: np.ndarray | None = None,
    optics: tuple[float, float, float] = (2 * HI_NM, NA, EMISSION_NM),
) -> Field:
    """A held-out field imaged at several light levels (fractions of the default).

    ``density`` (on the 2× grid) replaces the simulator's ``kind`` structure; ``optics``
    (camera pixel nm, NA, emission nm) and ``period_nm`` describe another microscope.
    """
    pixel_nm, na, emission_nm = optics
    hi_nm = pixel_nm / 2
    rng = np.random.default_rng(EVAL_SEED_BASE + seed)
    hi = (2 * size, 2 * size)
    if density is None:
        density = make_sample(kind, hi, hi_nm, seed=EVAL_SEED_BASE + seed, motion=False).density()
    otf = otf_2d(hi, hi_nm, na, emission_nm)
    cache = FringeCache(density, otf, 2, hi_nm)
    patterns = _patterns(rng, period_nm)
    adu = camera.qe / camera.e_per_adu
    sim9, widefield = {}, {}
    for f in fractions:
        scale = DEFAULT_SCALE * f
        sim9[f] = np.stack(
            [camera.expose(expected_from_cache(cache, p, scale), 10.0, rng) for p in patterns]
        )
        widefield[f] = camera.expose(cache.base * np.float32(scale), 10.0, rng)
    widefield3 = {  # drawn after the others: their noise is as without these
        f: np.stack(
            [camera.expose(cache.base * np.float32(DEFAULT_SCALE * f), 10.0, rng) for _ in range(3)]
        )
        for f in fractions
    }
    target_otf = sim_limit_otf(hi, hi_nm, na, emission_nm, period_nm)
    sr_target = blur(density, target_otf) * np.float32(DEFAULT_SCALE * adu)
    wf_target = cache.base * np.float32(DEFAULT_SCALE * adu)
    return Field(kind, sr_target, wf_target, sim9, widefield, widefield3)


def to_hi_grid(image: np.ndarray) -> np.ndarray:
    """Register a Fourier-upsampled camera-grid image onto the simulation's 2× grid.

    A camera pixel's centre lies half a fine pixel from the fine grid's pixel 2k.
    """
    spectrum = ndimage.fourier_shift(np.fft.fft2(image), (0.5, 0.5))
    return np.fft.ifft2(spectrum).real.astype(np.float32)


def score(output: np.ndarray, target: np.ndarray, pixel_nm: float) -> dict[str, float]:
    margin = output.shape[0] // 16  # ignore borders (edge tapering, padding)
    o = output[margin:-margin, margin:-margin]
    t = target[margin:-margin, margin:-margin]
    return {
        "psnr": psnr(o, t),
        "ssim": ssim(o, t),
        "resolution_nm": frc_resolution_nm(o, t, pixel_nm),
    }


def texture_field(
    size: int, period_nm: float, optics: tuple[float, float, float], seed: int = 1
) -> Field:
    """A field of a natural-image-like random texture (no structure a prior could guess) at
    full light, imaged by the microscope ``optics`` (camera pixel nm, NA, emission nm)."""
    from simulators.sim_fields import texture_density

    density = texture_density((2 * size, 2 * size), seed)
    return make_field(
        "texture", size, seed, (1.0,), period_nm=period_nm, density=density, optics=optics
    )
