"""Training pairs for the learned reconstructions, made on the fly by the simulator.

Each pair is drawn from the project's own physics (samples, structured illumination, optics,
sCMOS noise) with random structure, brightness (tens to thousands of photons per pixel),
modulation depth, pattern phase/angle/period jitter, sample position and, for a share of
pairs, live motion during the set (the simulator's own dynamics: growing filaments,
diffusing vesicles, drift); a seed reproduces it exactly.

Targets: for super-resolution the ground-truth density blurred to the 2D-SIM resolution limit
(an ideal OTF with cutoff 2NA/λ_em + |k|), on the 2× grid. This is chosen over the Wiener
reconstruction of bright 9-frame data because it is free of Wiener artefacts (ringing,
residual stripes) that a network would otherwise learn to reproduce, and it defines the
target resolution independently of any reconstruction's tuning. For denoising the target is
the noise-free widefield image on the camera grid.

Training crops are cut from larger simulated fields (128 and 256 camera pixels by default),
never simulated at the crop's size: the simulator keeps a minimum number of structures per
field, so a field as small as a crop is several times denser than a real cell or an
evaluation field, and a model trained on such fields never learns what empty space between
sparse structures looks like at low light.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import torch

from simulators.camera_model import CameraModel
from simulators.illumination import IlluminationPattern
from simulators.imaging import FringeCache, expected_from_cache
from simulators.optics import blur, otf_2d
from simulators.samples import make_sample
from srlive.recon.learned.geometry import CAMERA_NM, EMISSION_NM, NA, PERIOD_JITTER, PERIOD_NM
from srlive.recon.learned.tasks import Task

if TYPE_CHECKING:
    from srlive.learn.fluctuation import BurstSimSettings
    from srlive.learn.sim_pairs import PatternSimSettings

    # burst and band tasks: their own
    Settings: TypeAlias = "SimSettings | BurstSimSettings | PatternSimSettings"

HI_NM = CAMERA_NM / 2
TRAIN_STRUCTURES = ("microtubules", "vesicles", "mitochondria", "beads")
HELD_OUT_STRUCTURES = ("er",)


@dataclass(frozen=True)
class SimSettings:
    """Ranges the pairs are drawn from."""

    structures: tuple[str, ...] = TRAIN_STRUCTURES
    peak_photons: tuple[float, float] = (20.0, 3000.0)  # log-uniform, per camera pixel
    modulation: tuple[float, float] = (0.6, 0.9)
    period_jitter: float = PERIOD_JITTER
    angle_jitter_deg: float = 2.0
    phase_jitter_rad: float = 0.15
    background_photons: tuple[float, float] = (0.0, 10.0)
    motion_fraction: float = 0.3  # pairs whose live sample moves during the set
    frame_interval_s: float = 0.015  # between the frames of a set (10 ms exposure + readout)
    # camera pixels of the simulated fields training crops are cut from; each size gives the
    # same share of crops (at 256 px every structure has its natural density)
    field_sizes: tuple[int, ...] = (128, 256)


def sim_target_otf(shape: tuple[int, int]) -> np.ndarray:
    """Ideal OTF of 2D-SIM on the default microscope: cutoff 2NA/λ + 1/period."""
    from srlive.learn.sim_pairs import sim_limit_otf

    return sim_limit_otf(shape, HI_NM, NA, EMISSION_NM, PERIOD_NM)


def _patterns(
    rng: np.random.Generator, task: Task, settings: SimSettings
) -> list[IlluminationPattern]:
    if not task.pattern_frames:
        return [IlluminationPattern()]
    period = PERIOD_NM * (1 + rng.uniform(-1, 1) * settings.period_jitter)
    offset = rng.uniform(0, np.pi)  # pattern orientation differs between microscopes
    modulation = rng.uniform(*settings.modulation)
    patterns = []
    for a, p in task.pattern_frames:
        angle = offset + a * np.pi / 3 + np.radians(rng.normal(0, settings.angle_jitter_deg) / 3)
        phase = 2 * np.pi * p / 3 + rng.normal(0, settings.phase_jitter_rad) + a * 0.7
        k = (np.sin(angle) / period, np.cos(angle) / period)
        patterns.append(IlluminationPattern(((k[0], k[1], modulation, phase),), 1.0))
    return patterns


def make_pair(
    task: Task,
    size: int,
    seed: int,
    settings: Settings | None = None,
    camera: CameraModel = CameraModel(),
    kind: str | None = None,
    peak_photons: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One (input, target, info) pair; input (C, size, size), target (1, S, S) float32.

    Inputs are offset-subtracted and divided by a per-pair scale (the 99.5th percentile of the
    mean frame), targets use the same scale, so a model sees brightness-normalised data.
    Burst tasks (``dl-srrf5``) draw from :func:`srlive.learn.fluctuation.fluctuation_pair`
    with :class:`BurstSimSettings` (their own camera ranges; ``camera`` is not used).
    """
    if task.fluctuation:
        from srlive.learn.fluctuation import BurstSimSettings, fluctuation_pair

        burst = settings if isinstance(settings, BurstSimSettings) else BurstSimSettings()
        return fluctuation_pair(size, seed, burst, kind, peak_photons)
    if task.pattern_bands:
        from srlive.learn.sim_pairs import PatternSimSettings, pattern_pair

        bands = settings if isinstance(settings, PatternSimSettings) else PatternSimSettings()
        return pattern_pair(size, seed, bands, task.inputs)
    settings = settings if isinstance(settings, SimSettings) else SimSettings()
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(settings.structures))
    hi_shape = (2 * size, 2 * size)
    moving = rng.random() < settings.motion_fraction
    sample = make_sample(kind, hi_shape, HI_NM, seed=int(rng.integers(2**31)), motion=moving)
    shift = tuple(int(rng.integers(0, s)) for s in hi_shape)
    patterns = _patterns(rng, task, settings)
    densities = [np.roll(sample.density(), shift, axis=(0, 1))]
    for _ in patterns[1:]:
        sample.advance(settings.frame_interval_s)  # no-op for a still sample
        still = not sample.motion
        densities.append(densities[-1] if still else np.roll(sample.density(), shift, (0, 1)))
    peak = peak_photons or float(np.exp(rng.uniform(*np.log(settings.peak_photons))))
    otf = otf_2d(hi_shape, HI_NM, NA, EMISSION_NM)
    caches = [FringeCache(densities[0], otf, 2, HI_NM)]
    for before, density in pairwise(densities):
        caches.append(caches[-1] if density is before else FringeCache(density, otf, 2, HI_NM))
    scale = peak / max(float(np.percentile(caches[0].base, 99.9)), 1e-6)
    background = rng.uniform(*settings.background_photons)
    frames = np.stack(
        [
            camera.expose(expected_from_cache(cache, pattern, scale) + background, 10.0, rng)
            for cache, pattern in zip(caches, patterns, strict=True)
        ]
    ).astype(np.float32) - np.float32(camera.offset_adu)
    # a moving sample's target is what it looked like on average during the set
    density = np.mean(densities, axis=0) if len(densities) > 1 else densities[0]
    norm = max(float(np.percentile(frames.mean(axis=0), 99.5)), 1.0)
    inputs = frames / np.float32(norm)
    adu_per_photon = camera.qe / camera.e_per_adu
    # targets in the inputs' units: ADU per camera-pixel area (a 2x-grid value is the
    # camera value a pixel centred there would record)
    if task.super_resolve:
        target = blur(density, sim_target_otf(hi_shape)) * np.float32(scale)
    else:
        target = np.mean([c.base for c in caches], axis=0) * np.float32(scale)
    target = (target + background) * np.float32(adu_per_photon / norm)
    info = {"kind": kind, "peak_photons": peak, "norm_adu": norm, "seed": seed, "moving": moving}
    return inputs.astype(np.float32), target[None].astype(np.float32), info


def field_crops(
    task: Task, field: int, patch: int, seed: int, settings: Settings | None = None
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Random ``patch``-pixel crops of one simulated field: (input, target, target span).

    The field is normalised as a whole (as a live frame is at inference), so a crop of empty
    space stays dark; ``span`` is the whole target's range, the scale the evaluation's SSIM
    judges every region by. A field as large as the patch is one crop, the whole field; a
    larger one gives (field / patch)² crops at random positions.
    """
    x, y, _ = make_pair(task, field, seed, settings)
    span = float(y[0].max() - y[0].min())  # the image target's (a second is the error's)
    if field <= patch:
        return [(x, y, span)]
    up, xup = y.shape[-1] // field, x.shape[-1] // field  # grids of target and input
    rng = np.random.default_rng((seed, 1))
    crops = []
    for _ in range((field // patch) ** 2):
        r, c = (int(v) for v in rng.integers(0, field - patch + 1, 2))
        crops.append(
            (
                x[:, xup * r : xup * (r + patch), xup * c : xup * (c + patch)],
                y[:, up * r : up * (r + patch), up * c : up * (c + patch)],
                span,
            )
        )
    return crops


SHUFFLE_BUFFER = 64  # crops mixed across fields before they are batched


class PairStream(torch.utils.data.IterableDataset):
    """An endless, seeded stream of training crops (each worker its own seed range).

    Yields ``(input, target, span)``. Field sizes are drawn with weights ∝ 1/area so each
    size contributes the same share of crops; crops pass through a shuffle buffer so a batch
    mixes fields.
    """

    def __init__(
        self, task: Task, size: int, seed: int = 0, settings: Settings | None = None
    ) -> None:
        super().__init__()
        self.task, self.size, self.seed = task, size, seed
        self.settings = settings or SimSettings()

    def _fields(self, worker: int, n_workers: int):
        sizes = np.array([max(self.size, f) for f in self.settings.field_sizes], float)
        weights = 1.0 / sizes**2
        index = worker
        while True:
            seed = self.seed * 1_000_003 + index
            field = int(np.random.default_rng((seed, 2)).choice(sizes, p=weights / weights.sum()))
            yield field_crops(self.task, field, self.size, seed, self.settings)
            index += n_workers

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng((self.seed, worker, 3))
        buffer: list[tuple[np.ndarray, np.ndarray, float]] = []
        for crops in self._fields(worker, n_workers):
            if len(crops) == 1 and not buffer:  # fields of the patch's size: in order
                x, y, span = crops[0]
                yield torch.from_numpy(x), torch.from_numpy(y), torch.tensor(span)
                continue
            buffer.extend(crops)
            while len(buffer) >= SHUFFLE_BUFFER:
                i = int(rng.integers(len(buffer)))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                x, y, span = buffer.pop()
                yield (
                    torch.from_numpy(np.ascontiguousarray(x)),
                    torch.from_numpy(np.ascontiguousarray(y)),
                    torch.tensor(span),
                )
