"""Fine-tuning pairs from the user's own acquisitions (srlive stores): raw sets in, and the
SIM methods' targets (their Wiener reconstructions, made by :mod:`srlive.learn.targets`) or
the denoising target (the set's neighbours) out."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from srlive.recon.learned.geometry import EMISSION_NM, NA, PERIOD_NM
from srlive.recon.learned.model_input import model_planes
from srlive.recon.learned.pattern_input import BandGeometry, normalise_bands
from srlive.recon.learned.tasks import Task

if TYPE_CHECKING:
    from srlive.storage.omezarr import StoreReader


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
    norm = float(np.float32(max(float(np.percentile(frames.mean(axis=0), 99.5)), 1.0)))
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
