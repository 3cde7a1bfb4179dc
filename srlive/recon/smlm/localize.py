"""Classical single-molecule localisation: ``localize(frames, optics, camera) -> table``.

Per chunk of frames: ADU → photoelectrons with the camera's offset and gain; candidates by
:func:`srlive.recon.smlm.detect.find_candidates`; a ``box × box`` pixel box around each
(moved inside the frame at the edges); all boxes of the chunk fitted at once by maximum
likelihood (:func:`srlive.recon.smlm.fit.fit_boxes`, the sCMOS read noise in the model);
fits that did not converge or left their box dropped, and of two localisations closer than
``min_separation_px`` in one frame the one with fewer photons.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.spatial import cKDTree

from srlive.recon.optics import format_validation_error
from srlive.recon.smlm.detect import find_candidates
from srlive.recon.smlm.fit import fit_boxes, fit_boxes_astigmatic
from srlive.recon.smlm.gauss import AstigmaticCalibration, GaussModel
from srlive.recon.smlm.table import Localizations, concat

SIGMA_PER_LAMBDA_NA = 0.21  # σ of the Gaussian closest to the in-focus widefield PSF
CHUNK_PIXELS = 8 * 1024 * 1024  # default chunk: this many pixels of frames
MAX_AUTO_WORKERS = 4
CHUNKS_PER_WORKER = 4  # at most: a worker slowed by other load leaves work to the others
MIN_CHUNK_PIXELS = 4 * 1024 * 1024  # a fit has ~30 ms of fixed cost: chunks big enough


class SMLMCamera(BaseModel):
    """The camera's offset (ADU), gain (photoelectrons per ADU) and read noise (e⁻ rms)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset_adu: float = Field(100.0, ge=0, allow_inf_nan=False)
    e_per_adu: float = Field(0.46, gt=0, allow_inf_nan=False)
    read_noise_e: float = Field(1.6, ge=0, allow_inf_nan=False)

    def photoelectrons(self, frames: np.ndarray) -> np.ndarray:
        """Frames in ADU as photoelectrons (float32)."""
        out = np.asarray(frames, np.float32) - np.float32(self.offset_adu)
        out *= np.float32(self.e_per_adu)
        return out


class SMLMOptics(BaseModel):
    """What localisation needs of the optics: camera pixel at the sample, NA, emission."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pixel_nm: float = Field(65.0, gt=0, allow_inf_nan=False)
    na: float = Field(1.49, gt=0, le=1.7, allow_inf_nan=False)
    emission_nm: float = Field(670.0, gt=0, allow_inf_nan=False)

    @property
    def sigma_nm(self) -> float:
        """Width (σ) of the Gaussian closest to the in-focus PSF: 0.21 λ/NA."""
        return SIGMA_PER_LAMBDA_NA * self.emission_nm / self.na


class LocalizeSettings(BaseModel):
    """How candidates are found and fitted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(
        6.0,
        gt=0,
        le=1000,
        description="candidates above this many predicted noise SDs of the band-passed frame",
    )
    box: int = Field(7, ge=5, le=21, description="fitting box (camera pixels, odd)")
    model: Literal["free", "fixed", "astigmatic"] = Field(
        "free", description="PSF width fitted (free), fixed at sigma_nm, or depth (astigmatic)"
    )
    sigma_nm: float | None = Field(
        None, gt=0, description="PSF σ to start from (or fixed); default 0.21 λ/NA"
    )
    astigmatism: AstigmaticCalibration | None = None
    max_iterations: int = Field(50, ge=1, le=1000)
    precision: Literal["float32", "float64"] = Field(
        "float32", description="fitting arithmetic (float32: ~1.6x faster, 0.1 nm the same)"
    )
    min_separation_px: float = Field(
        1.0, ge=0, description="of two localisations closer in one frame, keep the brighter"
    )
    max_uncertainty_nm: float | None = Field(None, gt=0, description="drop less precise ones")
    chunk_frames: int | None = Field(
        None, ge=1, le=100_000, description="frames fitted at once (default: ~8 M pixels)"
    )
    workers: int = Field(
        0, ge=0, le=64, description="CPU: chunks localised in parallel (0: one per core, <= 4)"
    )
    device: str = Field("cpu", description="torch device: cpu, cuda, auto")

    @model_validator(mode="after")
    def _consistent(self) -> LocalizeSettings:
        if self.box % 2 == 0:
            raise ValueError(f"box must be odd, got {self.box}")
        if (self.model == "astigmatic") != (self.astigmatism is not None):
            raise ValueError("the astigmatic model and an astigmatism calibration go together")
        return self

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def localize_settings(**given: object) -> LocalizeSettings:
    """Settings from the given fields (None: default); a one-line ValueError names bad ones."""
    try:
        return LocalizeSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, "localisation settings")) from None


def _chunk_frames(n_frames: int, shape: tuple[int, int], workers: int) -> int:
    """Frames per chunk: up to CHUNKS_PER_WORKER chunks per worker (a whole number of
    rounds), each of at least MIN_CHUNK_PIXELS (the fit's fixed cost) and at most
    CHUNK_PIXELS (memory)."""
    pixels = n_frames * shape[0] * shape[1]
    chunks = min(pixels // MIN_CHUNK_PIXELS, CHUNKS_PER_WORKER * workers)
    if chunks > workers:
        chunks -= chunks % workers  # whole rounds: no worker left with one chunk more
    chunks = max(chunks, 1, -(-pixels // CHUNK_PIXELS))
    return max(1, -(-n_frames // chunks))


def _cores() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_AUTO_WORKERS))


@contextmanager
def cpu_fit_threads(device: torch.device) -> Iterator[None]:
    """One torch thread per fitting worker while CPU fits run (process-wide; restored).

    The fit's tensors are small (hundreds of spots × 49 pixels): torch's intra-op threads
    cost more than they give, and on a loaded machine their spinning barriers make each
    operation up to 100x slower; parallelism comes from fitting chunks on several threads.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cut_boxes(photons: np.ndarray, row: np.ndarray, col: np.ndarray, frame: np.ndarray, box: int):
    """Boxes ``(n, box, box)`` around the candidates, moved inside the frame; top-left corners."""
    _, h, w = photons.shape
    half = box // 2
    top = np.clip(row - half, 0, h - box)
    left = np.clip(col - half, 0, w - box)
    ii = top[:, None, None] + np.arange(box)[None, :, None]
    jj = left[:, None, None] + np.arange(box)[None, None, :]
    return photons[frame[:, None, None], ii, jj], top, left


def _drop_duplicates(locs: Localizations, min_separation_px: float) -> Localizations:
    """Of localisations closer than ``min_separation_px`` in one frame keep the brightest."""
    if len(locs) < 2 or min_separation_px <= 0:
        return locs
    scale = 1.0 / locs.pixel_nm
    far = 10.0 * (max(locs.frame_shape) + min_separation_px)  # frames never pair up
    points = np.stack([locs["frame"] * far, locs["x_nm"] * scale, locs["y_nm"] * scale], axis=1)
    pairs = cKDTree(points).query_pairs(min_separation_px, output_type="ndarray")
    if len(pairs) == 0:
        return locs
    photons = locs["photons"]
    keep = np.ones(len(locs), bool)
    order = np.argsort(-np.maximum(photons[pairs[:, 0]], photons[pairs[:, 1]]), kind="stable")
    for a, b in pairs[order]:
        if keep[a] and keep[b]:
            keep[b if photons[a] >= photons[b] else a] = False
    return locs.select(keep)


def _table(
    fit, cands, top, left, model: GaussModel, optics: SMLMOptics, first_frame: int, shape, n_frames
) -> Localizations:
    th, sd = fit.theta, fit.crlb_sd
    p = optics.pixel_nm
    k = model.box
    inside = (th[:, 0] > -0.5) & (th[:, 0] < k - 0.5) & (th[:, 1] > -0.5) & (th[:, 1] < k - 0.5)
    ok = fit.converged & inside & np.isfinite(sd).all(axis=1) & (th[:, 2] > 0)
    widths = model.widths(torch.as_tensor(th))
    sx, sy = widths[0].numpy() * p, widths[1].numpy() * p
    astig = model.model == "astigmatic"
    columns = {
        "frame": cands.frame + first_frame,
        "x_nm": (left + th[:, 0] + 0.5) * p,
        "y_nm": (top + th[:, 1] + 0.5) * p,
        "z_nm": th[:, 4] if astig else np.full(len(th), np.nan),
        "photons": th[:, 2],
        "background": th[:, 3],
        "uncertainty_nm": np.sqrt((sd[:, 0] ** 2 + sd[:, 1] ** 2) / 2) * p,
        "uncertainty_x_nm": sd[:, 0] * p,
        "uncertainty_y_nm": sd[:, 1] * p,
        "uncertainty_z_nm": sd[:, 4] if astig else np.full(len(th), np.nan),
        "sigma_x_nm": sx,
        "sigma_y_nm": sy,
        "significance": cands.significance,
        "log_likelihood_ratio": fit.log_likelihood_ratio,
        "iterations": fit.iterations,
    }
    table = Localizations.from_columns(columns, p, shape, n_frames)
    return table.select(ok)


def localize(
    frames: np.ndarray,
    optics: SMLMOptics | None = None,
    camera: SMLMCamera | None = None,
    settings: LocalizeSettings | None = None,
    first_frame: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Localizations:
    """Localise every emitter in ``frames`` ``(T, H, W)`` (ADU; a single frame is one).

    ``first_frame`` numbers the first frame (a burst within a longer acquisition);
    ``progress(n)`` is told after every chunk how many frames it held.
    """
    optics = optics or SMLMOptics()
    camera = camera or SMLMCamera()
    settings = settings or LocalizeSettings()
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or min(frames.shape[1:]) < settings.box:
        raise ValueError(
            f"frames must be (T, H, W) with H, W >= the box ({settings.box}), got {frames.shape}"
        )
    sigma_px = (settings.sigma_nm or optics.sigma_nm) / optics.pixel_nm
    model = GaussModel(
        settings.model, settings.box, sigma_px, optics.pixel_nm, settings.astigmatism
    )
    shape = (int(frames.shape[1]), int(frames.shape[2]))
    n_frames = first_frame + len(frames)
    device = settings.torch_device()
    workers = 1 if device.type != "cpu" else settings.workers or _cores()
    chunk = settings.chunk_frames or _chunk_frames(len(frames), shape, workers)
    fitter = fit_boxes_astigmatic if settings.model == "astigmatic" else fit_boxes

    def one_chunk(t0: int) -> Localizations:
        photons = camera.photoelectrons(frames[t0 : t0 + chunk])
        read_var = camera.read_noise_e**2
        cands = find_candidates(photons, sigma_px, settings.threshold, read_var)
        boxes, top, left = _cut_boxes(photons, cands.row, cands.col, cands.frame, settings.box)
        fit = fitter(
            boxes,
            model,
            read_var,
            max_iterations=settings.max_iterations,
            device=device,
            dtype=getattr(torch, settings.precision),
        )
        return _table(fit, cands, top, left, model, optics, first_frame + t0, shape, n_frames)

    starts = range(0, len(frames), chunk)
    parts = [Localizations.empty(optics.pixel_nm, shape, n_frames)]
    with cpu_fit_threads(device), ThreadPoolExecutor(max(1, min(workers, len(starts)))) as pool:
        for t0, part in zip(starts, pool.map(one_chunk, starts), strict=True):
            parts.append(part)
            if progress is not None:
                progress(min(chunk, len(frames) - t0))
    locs = _drop_duplicates(concat(parts), settings.min_separation_px)
    if settings.max_uncertainty_nm is not None:
        locs = locs.select(locs["uncertainty_nm"] <= settings.max_uncertainty_nm)
    return locs
