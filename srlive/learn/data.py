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

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
import torch

from simulators.camera_model import CameraModel
from simulators.illumination import IlluminationPattern
from simulators.imaging import FringeCache, expected_from_cache
from simulators.optics import blur, otf_2d
from simulators.samples import make_sample
from srlive.learn.geometry import CAMERA_NM, EMISSION_NM, NA, PERIOD_NM
from srlive.learn.pattern_input import BAND_CHANNELS, BandGeometry, model_planes, normalise_bands
from srlive.learn.single_phase_input import SINGLE_PHASE_CHANNELS

if TYPE_CHECKING:
    from srlive.learn.fluctuation import BurstSimSettings
    from srlive.learn.sim_pairs import PatternSimSettings
    from srlive.storage.omezarr import StoreReader

    # burst and band tasks: their own
    Settings: TypeAlias = "SimSettings | BurstSimSettings | PatternSimSettings"

HI_NM = CAMERA_NM / 2
TRAIN_STRUCTURES = ("microtubules", "vesicles", "mitochondria", "beads")
HELD_OUT_STRUCTURES = ("er",)


@dataclass(frozen=True)
class Task:
    """What a model sees and what it must produce."""

    name: str
    pattern_frames: tuple[tuple[int, int], ...]  # (angle, phase) per input frame; () = widefield
    super_resolve: bool  # output on the 2× grid at SIM resolution (else camera-grid widefield)
    description: str
    frames: int = 0  # consecutive raw frames of a fluctuation burst (0: not a burst model)
    # "frames": the raw frames themselves; "sim-bands": the measured pattern's band
    # components (9 frames); "single-phase": residuals demodulated by the measured fringe
    # (3 frames, one phase per angle); both on the 2x grid (srlive.learn.pattern_input)
    inputs: str = "frames"

    @property
    def in_channels(self) -> int:
        if self.inputs == "sim-bands":
            return len(BAND_CHANNELS)
        if self.inputs == "single-phase":
            return len(SINGLE_PHASE_CHANNELS)
        return self.frames or max(1, len(self.pattern_frames))

    @property
    def pattern_bands(self) -> bool:
        """The model reads planes made from the measured pattern, on the 2x grid."""
        return self.inputs in ("sim-bands", "single-phase")

    @property
    def fluctuation(self) -> bool:
        """A burst model: its input is consecutive frames of blinking dyes."""
        return self.frames > 0


TASKS: dict[str, Task] = {
    "dl-sim3": Task(
        "dl-sim3",
        ((0, 0), (1, 0), (2, 0)),
        True,
        "3 raw SIM frames (one phase per angle) at low light -> each frame demodulated by "
        "its own measured fringe -> SR on the 2x grid (any microscope in its trained "
        "geometry range)",
        inputs="single-phase",
    ),
    "dl-sim9": Task(
        "dl-sim9",
        tuple((a, p) for a in range(3) for p in range(3)),
        True,
        "9 raw SIM frames at low light -> the measured pattern's band components -> SR on "
        "the 2x grid (any microscope in its trained geometry range)",
        inputs="sim-bands",
    ),
    "dl-denoise": Task(
        "dl-denoise", (), False, "one low-light widefield frame -> high-SNR widefield"
    ),
    "dl-wf2sr": Task(
        "dl-wf2sr",
        (),
        True,
        "one widefield frame -> SR estimate (cross-modality, an estimate only)",
    ),
    "dl-srrf5": Task(
        "dl-srrf5",
        (),
        True,
        "5 consecutive raw frames of blinking dyes -> fluctuation SR on the 2x grid "
        "(a learned SRRF from 5 frames)",
        frames=5,
    ),
}


@dataclass(frozen=True)
class SimSettings:
    """Ranges the pairs are drawn from."""

    structures: tuple[str, ...] = TRAIN_STRUCTURES
    peak_photons: tuple[float, float] = (20.0, 3000.0)  # log-uniform, per camera pixel
    modulation: tuple[float, float] = (0.6, 0.9)
    period_jitter: float = 0.02
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


def _check_store(task: Task, reader: StoreReader) -> None:
    """Refuse a store ``task`` cannot fine-tune on (one line naming the store)."""
    if task.fluctuation:
        raise ValueError(f"{reader.path}: fine-tuning {task.name} on stores is not supported")
    if task.name != "dl-denoise":
        layout = (reader.n_angles, reader.n_phases)
        if layout != (3, 3):
            raise ValueError(
                f"{reader.path}: fine-tuning {task.name} needs sim9 sets, store has "
                f"{layout[0]}x{layout[1]}"
            )
        if reader.n_sets < 1:
            raise ValueError(f"{reader.path}: fine-tuning {task.name} needs a complete set")
    elif reader.n_sets * reader.n_angles * reader.n_phases < 2:
        raise ValueError(f"{reader.path}: denoising fine-tuning needs at least two frames")


def fine_tune_stores(task: Task, stores: Sequence[str | Path]) -> list[Path]:
    """The stores to fine-tune ``task`` on, resolved and sorted (each checked, none twice)."""
    from srlive.storage.omezarr import open_store

    if not stores:
        raise ValueError("fine-tuning needs at least one store")
    resolved = sorted(Path(s).resolve() for s in stores)
    for a, b in pairwise(resolved):
        if a == b:
            raise ValueError(f"{a} is given twice")
    for path in resolved:
        _check_store(task, open_store(path))
    return resolved


def _sim_input(task: Task, frames: np.ndarray) -> np.ndarray:
    """The model's input from one 9-frame set (9, H, W): its frames, or their widefield mean."""
    if task.name == "dl-wf2sr":
        return frames.astype(np.float32).mean(axis=0, keepdims=True)
    return frames[[3 * a + p for a, p in task.pattern_frames]].astype(np.float32)


def _consecutive_frames(reader: StoreReader, i: int) -> np.ndarray:
    """Frames ``i`` and ``i + 1`` of the store's frame sequence (2, H, W), as float32."""
    per_set = reader.n_angles * reader.n_phases
    first, last = i // per_set, (i + 1) // per_set
    flat = reader.read_sets(first, last + 1).reshape(-1, *reader.raw.shape[-2:])
    k = i - first * per_set
    return flat[k : k + 2].astype(np.float32)


def _crop_pair(
    x: np.ndarray, y: np.ndarray, up: int, patch: int, multiple: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random crop of an offset-free (input, target) pair, normalised over the whole frame.

    As a live frame is at inference: the scale is the 99.5th percentile of the whole input's
    mean frame, and ``span`` the whole target's range (in that scale). The crop is ``patch``
    camera pixels (at most the frame), a multiple of ``multiple``; ``up`` is the target's grid.
    """
    norm = np.float32(max(float(np.percentile(x.mean(axis=0), 99.5)), 1.0))
    return _crop(x / norm, y / norm, 1, up, patch, multiple, rng)


def _crop(
    x: np.ndarray,
    y: np.ndarray,
    xup: int,
    up: int,
    patch: int,
    multiple: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A random ``patch``-camera-pixel crop of a normalised pair (input on an ``xup`` grid)."""
    span = float(y.max() - y.min())
    h, w = (v // xup for v in x.shape[-2:])
    p = min(patch, h, w) // multiple * multiple
    y0, x0 = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
    x = x[:, xup * y0 : xup * (y0 + p), xup * x0 : xup * (x0 + p)]
    y = y[:, up * y0 : up * (y0 + p), up * x0 : up * (x0 + p)]
    return x, y, span


def _sim_pair(
    task: Task,
    frames: np.ndarray,
    y: np.ndarray,
    pixel_nm: float,
    patch: int,
    multiple: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A fine-tuning crop of one offset-free 9-frame set and its SR target (2x grid)."""
    if not task.pattern_bands:
        return _crop_pair(_sim_input(task, frames), y, 2, patch, multiple, rng)
    geometry = BandGeometry(pixel_nm, NA, EMISSION_NM, PERIOD_NM)
    features, _ = model_planes(task.inputs, _sim_input(task, frames), geometry)
    norm = np.float32(max(float(np.percentile(frames.mean(axis=0), 99.5)), 1.0))
    return _crop(normalise_bands(features, norm), y / norm, 2, 2, patch, multiple, rng)


def _tensors(x: np.ndarray, y: np.ndarray, span: float) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(np.ascontiguousarray(x, np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, np.float32)),
        torch.tensor(span, dtype=torch.float32),
    )


class StorePairs(torch.utils.data.IterableDataset):
    """Fine-tuning pairs from a user's own OME-Zarr acquisition, targets made in the loader.

    * ``dl-sim3`` / ``dl-sim9``: stored 9-frame SIM sets; the input is the model's frames of a
      set, the target its Wiener reconstruction (parameters estimated from the data, nominal
      NA and emission).
    * ``dl-denoise``: Noise2Noise — two consecutive widefield frames of the same field.
    * ``dl-wf2sr``: the widefield sum of a SIM set as input, its Wiener reconstruction as target.
    Random crops of ``patch`` camera pixels, normalised over the whole frame as simulated
    fields are; yields ``(input, target, span)`` like :class:`PairStream`. Training uses
    :class:`ManyStorePairs`, whose targets are reconstructed once, beforehand.
    """

    def __init__(
        self,
        task: Task,
        store: str | Path,
        patch: int,
        seed: int = 0,
        offset_adu: float = 100.0,
        multiple: int = 4,
    ) -> None:
        super().__init__()
        from srlive.storage.omezarr import open_store

        self.task, self.patch, self.seed, self.offset = task, patch, seed, offset_adu
        self.multiple = multiple  # crop sizes the model accepts
        self.reader = open_store(store)
        _check_store(task, self.reader)
        self.targets: dict[int, np.ndarray] = {}

    def _wiener(self, t: int, frames: np.ndarray) -> np.ndarray:
        from srlive.recon.wiener_sim import WienerSIM

        if t not in self.targets:
            sim = WienerSIM(
                frames.shape[-2:], self.reader.pixel_nm, NA, EMISSION_NM, offset_adu=self.offset
            )
            sim.calibrate(frames)
            self.targets[t] = sim.reconstruct(frames)
        return self.targets[t]

    def _pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
        offset = np.float32(self.offset)
        if self.task.name == "dl-denoise":
            n_frames = self.reader.n_sets * self.reader.n_angles * self.reader.n_phases
            pair = _consecutive_frames(self.reader, int(rng.integers(0, n_frames - 1))) - offset
            return _crop_pair(pair[:1], pair[1:], 1, self.patch, self.multiple, rng)
        t = int(rng.integers(0, self.reader.n_sets))
        frames = self.reader.read_set(t).reshape(9, *self.reader.raw.shape[-2:])
        y = self._wiener(t, frames)[None]
        raw = frames.astype(np.float32) - offset
        return _sim_pair(self.task, raw, y, self.reader.pixel_nm, self.patch, self.multiple, rng)

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            yield _tensors(*self._pair(rng))


class StorePair(NamedTuple):
    """One fine-tuning pair and where it came from (store index, set)."""

    store: int
    t: int
    x: np.ndarray
    y: np.ndarray
    span: float


class ManyStorePairs(torch.utils.data.IterableDataset):
    """Fine-tuning pairs drawn from several stores (see :func:`srlive.learn.targets`).

    Each pair picks a store at random, weighted by the pairs it holds (its reconstructed sets;
    for ``dl-denoise`` its consecutive frame pairs), then a set (or frame) at random.
    SIM tasks: the input is the model's frames of the set, offset-subtracted with the store's
    own camera offset; the target is that set's SR image in ``targets[i]``, a complete
    ``wiener-sim`` reconstruction of ``stores[i]``. ``dl-denoise``: Noise2Noise from two
    consecutive frames (no targets). Crops and normalisation as :class:`StorePairs`; yields
    ``(input, target, span)``; :meth:`draw` gives one :class:`StorePair`.
    """

    def __init__(
        self,
        task: Task,
        stores: Sequence[str | Path],
        patch: int,
        targets: Sequence[str | Path] | None = None,
        seed: int = 0,
        multiple: int = 4,
    ) -> None:
        super().__init__()
        from srlive.recon.file_input import open_input
        from srlive.storage.omezarr import open_store

        self.task, self.patch, self.seed, self.multiple = task, patch, seed, multiple
        self.readers = [open_store(s) for s in stores]
        if not self.readers:
            raise ValueError("fine-tuning needs at least one store")
        for reader in self.readers:
            _check_store(task, reader)
        self.offsets = [np.float32(open_input(s)[1].offset_adu) for s in stores]
        self.targets = []
        if task.name == "dl-denoise":
            counts = [r.n_sets * r.n_angles * r.n_phases - 1 for r in self.readers]
            self.sets: list[list[int]] = []
        else:
            if targets is None or len(targets) != len(stores):
                raise ValueError(f"{task.name} needs one target store per store")
            self.targets = [open_store(t) for t in targets]
            self.sets = [
                _reconstructed_sets(target, reader.n_sets)
                for reader, target in zip(self.readers, self.targets, strict=True)
            ]
            counts = [len(s) for s in self.sets]
        weights = np.asarray(counts, float)
        self.weights = weights / weights.sum()

    def draw(self, rng: np.random.Generator) -> StorePair:
        """One pair: a store, then a set (or a frame pair) of it, then a crop."""
        i = int(rng.choice(len(self.readers), p=self.weights))
        reader, offset = self.readers[i], self.offsets[i]
        if self.task.name == "dl-denoise":
            j = int(rng.integers(0, reader.n_sets * reader.n_angles * reader.n_phases - 1))
            pair = _consecutive_frames(reader, j) - offset
            x, y, span = _crop_pair(pair[:1], pair[1:], 1, self.patch, self.multiple, rng)
            return StorePair(i, j // (reader.n_angles * reader.n_phases), x, y, span)
        t = self.sets[i][int(rng.integers(0, len(self.sets[i])))]
        frames = reader.read_set(t).reshape(9, *reader.raw.shape[-2:])
        y = self.targets[i].read_sr(t)[None].astype(np.float32)
        raw = frames.astype(np.float32) - offset
        x, y, span = _sim_pair(self.task, raw, y, reader.pixel_nm, self.patch, self.multiple, rng)
        return StorePair(i, t, x, y, span)

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            pair = self.draw(rng)
            yield _tensors(pair.x, pair.y, pair.span)


def _reconstructed_sets(target: StoreReader, n_sets: int) -> list[int]:
    """The sets of a complete target store that have an SR image (and a raw set to pair)."""
    if not target.complete or target.sr is None:
        raise ValueError(f"{target.path}: not a complete reconstruction (delete it and rerun)")
    if target.sr.shape[-2:] != tuple(2 * v for v in target.raw.shape[-2:]):
        raise ValueError(f"{target.path}: its SR images are not on the 2x grid")
    sets = sorted(t for t, s in target.sr_status().items() if s == "reconstructed" and t < n_sets)
    if not sets:
        raise ValueError(f"{target.path}: no reconstructed set to fine-tune on")
    return sets
