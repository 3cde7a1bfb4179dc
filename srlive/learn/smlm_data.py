"""dl-smlm's training data: short bursts of blinking dyes on prior-free structures.

Each sample is ``context`` consecutive frames of a ``patch × patch`` camera crop and the
ground truth of its middle frame (positions, detected photons) and background. Nothing in
it can be guessed from a prior: the dyes sit on random points, segments, rings, stars and
spirals (:func:`simulators.fluctuation_fields.prior_free_emitters`, drawn with seeds from
:data:`TRAIN_SEED_BASE` on, far from the benchmark's) or uniformly at random; which of
them are on follows no structure either.

Per sample, drawn from :class:`SMLMDataRanges`: the emitter density per frame (log-uniform),
the switching events' mean length (exponential on-times cut by the frame boundaries, so
partial frames are common), the photons of a whole frame on (log-uniform mean, lognormal
per dye), the background (log-uniform, with a gradient and a smooth random field), the
camera (QE, read noise, gain, offset), the pixel size and emission wavelength (so the PSF
width in pixels) and the depth range of the dyes (defocus). Frames are rendered with the
simulator's pupil PSF (:class:`simulators.smlm_psf.PSFRenderer`) and sCMOS
(:class:`CameraModel`), then turned back into photoelectrons with that camera's offset and
gain, as inference does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from simulators.camera_model import CameraModel
from simulators.fluctuation_fields import prior_free_emitters
from simulators.smlm_psf import PSFRenderer, PupilOptics

TRAIN_SEED_BASE = 10_000_000  # structures of training; the benchmark's seeds are small
KINDS = ("segments", "points", "rings", "stars", "spirals")
EXPOSURE_MS = 10.0


@dataclass(frozen=True)
class SMLMDataRanges:
    """The ranges training draws from (each uniform, or log-uniform where said)."""

    density_per_um2: tuple[float, float] = (0.05, 6.0)  # dyes on per frame, log-uniform
    on_frames: tuple[float, float] = (0.4, 3.0)  # mean on-time of an event (frames)
    photons_per_frame: tuple[float, float] = (400.0, 10000.0)  # a whole frame on, log-uniform
    brightness_sigma: float = 0.35  # lognormal spread of dye brightness
    background_photons: tuple[float, float] = (5.0, 400.0)  # per pixel per frame, log-uniform
    background_gradient: float = 0.3  # relative change across a crop, at most
    background_variation: float = 0.5  # rms of a smooth random field (relative), at most
    qe: tuple[float, float] = (0.6, 0.95)
    read_noise_e: tuple[float, float] = (0.5, 3.0)
    e_per_adu: tuple[float, float] = (0.2, 2.0)
    offset_adu: tuple[float, float] = (50.0, 400.0)
    pixel_nm: tuple[float, ...] = (65.0, 80.0, 100.0)
    emission_nm: tuple[float, ...] = (580.0, 670.0, 760.0)
    na: float = 1.49
    defocus_nm: tuple[float, float] = (0.0, 300.0)  # dyes' depths uniform in ±this

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def psf_sigma_px(self) -> tuple[float, float]:
        """The in-focus PSF σ in camera pixels the ranges span (0.21 λ / NA_eff / pixel)."""
        na = min(self.na, 1.33)
        widths = [0.21 * e / na / p for e in self.emission_nm for p in self.pixel_nm]
        return (min(widths), max(widths))


@lru_cache(maxsize=64)
def _renderer(pixel_nm: float, emission_nm: float, z_max: float) -> PSFRenderer:
    """The pupil PSF of one optics, tabulated every 25 nm in ±``z_max``."""
    optics = PupilOptics(
        pixel_nm=pixel_nm, emission_nm=emission_nm, z_range_nm=z_max, z_step_nm=25.0
    )
    renderer = PSFRenderer(optics)
    renderer.tiles(np.zeros(1) + 5, np.zeros(1) + 5, np.zeros(1))  # tabulate the OTFs now
    return renderer


@dataclass
class SMLMSample:
    """One training sample: frames (photoelectrons) and the middle frame's truth (pixels)."""

    frames: np.ndarray  # (context, patch, patch) float32 photoelectrons
    x_px: np.ndarray  # truth of the middle frame: pixel k covers [k, k+1)
    y_px: np.ndarray
    photons_e: np.ndarray  # detected photoelectrons
    background_e: np.ndarray  # (patch, patch) expected background photoelectrons


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _dye_pool(rng: np.random.Generator, field_nm: float, seed: int, n: int) -> np.ndarray:
    """At least ``n`` dye positions (y, x nm from the field's corner) on prior-free structures."""
    if rng.random() < 0.25:
        return rng.uniform(0, field_nm, (n, 2))
    kinds = tuple(k for k in KINDS if rng.random() < 0.5) or ("points",)
    density = 1.0
    for _ in range(8):
        em = prior_free_emitters(kinds, (field_nm, field_nm), seed=seed, density=density)
        if len(em) >= n:
            break
        density *= 2.0
    pos = em.positions_nm.astype(np.float64) + field_nm / 2
    if len(pos) < n:  # top up with uniform dyes
        pos = np.concatenate([pos, rng.uniform(0, field_nm, (n - len(pos), 2))])
    return pos


def _events(
    rng: np.random.Generator, n_dyes: int, rate: float, tau: float, context: int
) -> tuple[np.ndarray, np.ndarray]:
    """Switching events overlapping the window: dye index and on-fraction per frame ``(n, T)``."""
    lead = 6.0 * tau
    n = rng.poisson(rate * (context + lead))
    start = rng.uniform(-lead, context, n)
    stop = start + rng.exponential(tau, n)
    edges = np.arange(context + 1, dtype=np.float64)
    on = np.clip(
        np.minimum(stop[:, None], edges[None, 1:]) - np.maximum(start[:, None], edges[None, :-1]),
        0,
        1,
    )
    keep = on.sum(axis=1) > 0
    return rng.integers(0, n_dyes, n)[keep], on[keep]


def make_sample(
    rng: np.random.Generator,
    patch: int,
    context: int,
    ranges: SMLMDataRanges,
    seed: int,
) -> SMLMSample:
    """One random sample (``seed`` picks the structure)."""
    pixel = float(rng.choice(ranges.pixel_nm))
    emission = float(rng.choice(ranges.emission_nm))
    z_max = float(rng.uniform(*ranges.defocus_nm))
    renderer = _renderer(pixel, emission, max(ranges.defocus_nm))
    margin = renderer.optics.patch // 2
    field_px = patch + 2 * margin
    field_nm = field_px * pixel
    density = _log_uniform(rng, ranges.density_per_um2)
    tau = float(rng.uniform(*ranges.on_frames))
    area_um2 = (field_nm / 1000.0) ** 2
    rate = density * area_um2 / (1.0 + tau)  # events per frame: each is seen ~1 + tau frames
    n_dyes = max(8, int(4 * density * area_um2 * context) + 8)
    dyes = _dye_pool(rng, field_nm, seed, n_dyes)
    dye, on = _events(rng, len(dyes), rate, tau, context)
    full = _log_uniform(rng, ranges.photons_per_frame)
    s = ranges.brightness_sigma
    bright = full * rng.lognormal(-0.5 * s * s, s, len(dye))
    depth = rng.uniform(-z_max, z_max, len(dyes)) if z_max > 0 else np.zeros(len(dyes))
    frame, event = np.nonzero(on.T)
    y_px = dyes[dye[event], 0] / pixel
    x_px = dyes[dye[event], 1] / pixel
    photons = bright[event] * on[event, frame]
    expected = renderer.render(
        (field_px, field_px), frame, context, y_px, x_px, photons, depth[dye[event]]
    )[:, margin:-margin, margin:-margin]
    level = _log_uniform(rng, ranges.background_photons)
    gy, gx = rng.uniform(-1, 1, 2) * ranges.background_gradient / patch
    ramp = np.arange(patch) - patch / 2
    relative = 1 + gy * ramp[:, None] + gx * ramp[None, :]
    if ranges.background_variation > 0:  # patches of 3-30 pixels, as autofluorescence
        field = ndimage.gaussian_filter(
            rng.standard_normal((patch, patch)), rng.uniform(3, 30), mode="wrap"
        )
        field = (field - field.mean()) / max(float(field.std()), 1e-12)
        relative = relative + rng.uniform(0, ranges.background_variation) * field
    background = level * np.clip(relative, 0.2, None)
    camera = CameraModel(
        qe=float(rng.uniform(*ranges.qe)),
        read_noise_e=float(rng.uniform(*ranges.read_noise_e)),
        e_per_adu=float(rng.uniform(*ranges.e_per_adu)),
        offset_adu=float(rng.uniform(*ranges.offset_adu)),
    )
    frames = np.empty((context, patch, patch), np.float32)
    for t in range(context):
        adu = camera.expose((expected[t] + background).astype(np.float32), EXPOSURE_MS, rng)
        frames[t] = (adu.astype(np.float32) - camera.offset_adu) * camera.e_per_adu
    middle = context // 2
    sel = (frame == middle) & (photons > 0)
    ys, xs = y_px[sel] - margin, x_px[sel] - margin
    inside = (ys >= 0) & (ys < patch) & (xs >= 0) & (xs < patch)
    dark = camera.dark_e_per_s * EXPOSURE_MS / 1000.0
    return SMLMSample(
        frames=frames,
        x_px=xs[inside],
        y_px=ys[inside],
        photons_e=photons[sel][inside] * camera.qe,
        background_e=(background * camera.qe + dark).astype(np.float32),
    )


@dataclass
class SMLMBatch:
    """Samples stacked: frames ``(B, T, P, P)``; truth padded to the most emitters
    ``(B, E)`` with ``mask``; background ``(B, P, P)``."""

    frames: np.ndarray
    x_px: np.ndarray
    y_px: np.ndarray
    photons_e: np.ndarray
    mask: np.ndarray
    background_e: np.ndarray


def make_batch(
    rng: np.random.Generator, size: int, patch: int, context: int, ranges: SMLMDataRanges,
    first_seed: int,
) -> SMLMBatch:  # fmt: skip
    """``size`` samples; structure seeds ``first_seed``, ``first_seed + 1``, ..."""
    samples = [make_sample(rng, patch, context, ranges, first_seed + i) for i in range(size)]
    most = max(1, max(len(s.x_px) for s in samples))
    pad = np.zeros((size, most))
    x, y, n, mask = pad.copy(), pad.copy(), pad.copy(), np.zeros((size, most), bool)
    for i, s in enumerate(samples):
        k = len(s.x_px)
        x[i, :k], y[i, :k], n[i, :k], mask[i, :k] = s.x_px, s.y_px, s.photons_e, True
    return SMLMBatch(
        frames=np.stack([s.frames for s in samples]),
        x_px=x,
        y_px=y,
        photons_e=n,
        mask=mask,
        background_e=np.stack([s.background_e for s in samples]),
    )
