"""dl-smlm inference: ``localize_learned(frames, optics, camera) -> Localizations``.

Frames (ADU) become photoelectrons with the camera's offset and gain, exactly as for the
classical fit; each frame is localised from itself and its neighbours (``context`` frames
centred on it, mirrored at the ends of the stack) by
:class:`~srlive.recon.smlm.net.SMLMNet`. Its probability map becomes localisations
as in DECODE: every pixel with probability >= ``high_threshold``, and every other local
maximum (3 × 3) whose probabilities summed over its 3 × 3 neighbourhood reach
``threshold``; each at its pixel's centre plus the predicted offset.

The table has the classical one's columns (:data:`srlive.recon.smlm.table.
LOCALIZATION_COLUMNS`): ``photons`` and ``background`` (photoelectrons, per pixel for the
background) and the ``uncertainty`` columns are the network's predicted standard
deviations (times the ``sigma_scale`` the weights were calibrated with on validation
bursts), ``significance`` holds the detection probability (the summed one for local
maxima), ``sigma_x_nm``/``sigma_y_nm`` (the PSF's width, not estimated), ``z_nm`` and the
fit's ``log_likelihood_ratio``/``iterations`` are empty (NaN, -1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from safetensors import safe_open
from safetensors.torch import load_file

from srlive.recon.smlm.localize import SMLMCamera, SMLMOptics, cpu_cores, cpu_fit_threads
from srlive.recon.smlm.net import INPUT_SCALE, PHOTON_SCALE, SMLMNet, SMLMNetConfig
from srlive.recon.smlm.table import Localizations, concat

TASK = "dl-smlm"
CHUNK_PIXELS = 64 * 1024  # frames' pixels through the network at once (cache-sized)


class LearnedLocalizeSettings(BaseModel):
    """How dl-smlm's maps become localisations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str = Field(TASK, description="a shipped model's name or a .safetensors file")
    threshold: float | None = Field(
        None,
        gt=0,
        le=9,
        description="summed 3x3 detection probability of a local maximum (default: the "
        "weights' validated one, else 0.5)",
    )
    high_threshold: float = Field(
        0.6, gt=0, le=1, description="a pixel this probable is a localisation on its own"
    )
    max_uncertainty_nm: float | None = Field(None, gt=0, description="drop less precise ones")
    workers: int = Field(
        0, ge=0, le=64, description="CPU: chunks run in parallel, one thread each (0: per core)"
    )
    device: str = Field("cpu", description="torch device: cpu, cuda, auto")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass(frozen=True)
class LearnedLocalizer:
    """A loaded dl-smlm model and what its weights say about their training."""

    net: SMLMNet
    info: dict[str, Any]
    path: Path

    @property
    def context(self) -> int:
        return self.net.config.context

    def threshold(self, given: float | None) -> float:
        """The detection threshold: ``given``, else the weights' validated one, else 0.5."""
        return float(given if given is not None else self.info.get("threshold", 0.5))

    @property
    def sigma_scale(self) -> float:
        """Factor on the predicted sigmas, calibrated on validation bursts (1: none)."""
        return float(self.info.get("sigma_scale", 1.0))


def load_smlm_weights(path: str | Path) -> LearnedLocalizer:
    """The model of a dl-smlm weights file; FileNotFoundError or a one-line ValueError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("task") != TASK:
            raise ValueError(f"a model of task {meta.get('task')!r}, not {TASK}")
        net = SMLMNet(SMLMNetConfig(**json.loads(meta["config"])))
        net.load_state_dict(load_file(str(path)))
        info = json.loads(meta.get("info", "{}"))
    except Exception as exc:
        reason = " ".join(str(exc).split())
        raise ValueError(f"{path}: not a valid dl-smlm weights file ({reason})") from None
    return LearnedLocalizer(net.eval(), info, path)


@lru_cache(maxsize=4)
def _cached(path: str, version: tuple[int, int]) -> LearnedLocalizer:
    return load_smlm_weights(path)


def smlm_model(weights: str | Path) -> LearnedLocalizer:
    """A shipped model by name or a weights file, loaded once per process."""
    path = Path(weights)
    if path.suffix != ".safetensors":
        from srlive.recon.learned.weights_meta import resolve_weights

        path = resolve_weights(weights)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path}")
    stat = path.stat()
    return _cached(str(path), (stat.st_mtime_ns, stat.st_size))


def _windows(photons: np.ndarray, context: int) -> np.ndarray:
    """``(T, context, H, W)``: each frame with its neighbours, mirrored at the ends of the
    stack (frame 1 stands in for frame -1: another noise draw of the same sample; repeating
    frame 0 itself would make its noise look like emitters that stay on). A single frame's
    neighbours are its median: background with nothing on."""
    n = len(photons)
    if n == 1:
        still = np.full_like(photons, np.median(photons))
        photons, n = np.concatenate([still, photons]), 2
        index = np.full((1, context), 0)
        index[0, context // 2] = 1
        return photons[index]
    half = context // 2
    t = np.abs(np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :])
    t = np.where(t > n - 1, 2 * (n - 1) - t, t)
    return photons[np.clip(t, 0, n - 1)]


def detections(
    maps: torch.Tensor, threshold: float, high_threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(n, 3)`` (frame, row, column) of the localisations in ``maps`` ``(B, 8, H, W)``
    and their detection scores."""
    p = maps[:, 0:1]
    peak = F.max_pool2d(p, 3, stride=1, padding=1) == p
    summed = F.avg_pool2d(p, 3, stride=1, padding=1, count_include_pad=False) * 9
    high = p >= high_threshold
    keep = high | (peak & (summed >= threshold))
    score = torch.where(high, p, summed.clamp(max=1.0))
    index = keep[:, 0].nonzero()
    return index, score[index[:, 0], 0, index[:, 1], index[:, 2]]


def _table(
    maps: torch.Tensor, index: torch.Tensor, score: torch.Tensor, pixel_nm: float,
    first_frame: int, shape: tuple[int, int], n_frames: int, sigma_scale: float = 1.0,
) -> Localizations:  # fmt: skip
    f, r, c = index[:, 0], index[:, 1], index[:, 2]
    v = maps[f, :, r, c].double().cpu().numpy()  # (n, 8)
    rows, cols = r.cpu().numpy(), c.cpu().numpy()
    sx, sy = v[:, 4] * pixel_nm * sigma_scale, v[:, 5] * pixel_nm * sigma_scale
    columns = {
        "frame": f.cpu().numpy() + first_frame,
        "x_nm": (cols + 0.5 + v[:, 1]) * pixel_nm,
        "y_nm": (rows + 0.5 + v[:, 2]) * pixel_nm,
        "photons": v[:, 3] * PHOTON_SCALE,
        "background": v[:, 7] * INPUT_SCALE,
        "uncertainty_nm": np.sqrt((sx**2 + sy**2) / 2),
        "uncertainty_x_nm": sx,
        "uncertainty_y_nm": sy,
        "significance": score.double().cpu().numpy(),
    }
    return Localizations.from_columns(columns, pixel_nm, shape, n_frames)


def localize_learned(
    frames: np.ndarray,
    optics: SMLMOptics | None = None,
    camera: SMLMCamera | None = None,
    settings: LearnedLocalizeSettings | None = None,
    first_frame: int = 0,
    progress: Callable[[int], None] | None = None,
    model: LearnedLocalizer | None = None,
) -> Localizations:
    """Localise every emitter in ``frames`` ``(T, H, W)`` (ADU) with dl-smlm.

    ``first_frame`` numbers the first frame; ``progress(n)`` hears of every chunk done;
    ``model``: an already loaded one (default: ``settings.weights``).
    """
    optics = optics or SMLMOptics()
    camera = camera or SMLMCamera()
    settings = settings or LearnedLocalizeSettings()
    model = model or smlm_model(settings.weights)
    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or min(frames.shape[1:]) < 4:
        raise ValueError(f"frames must be (T, H, W) with H, W >= 4, got {frames.shape}")
    shape = (int(frames.shape[1]), int(frames.shape[2]))
    n_frames = first_frame + len(frames)
    device = settings.torch_device()
    net = model.net.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    chunk = max(1, CHUNK_PIXELS // (shape[0] * shape[1]))
    half = model.context // 2
    threshold = model.threshold(settings.threshold)

    def one_chunk(t0: int) -> Localizations:
        lo, hi = max(0, t0 - half), min(len(frames), t0 + chunk + half)
        photons = camera.photoelectrons(frames[lo:hi]) / np.float32(INPUT_SCALE)
        window = torch.as_tensor(_windows(photons, model.context)[t0 - lo : t0 - lo + chunk])
        with torch.inference_mode():
            maps, _ = net(window.to(device, memory_format=torch.channels_last))
            index, score = detections(maps, threshold, settings.high_threshold)
            return _table(maps, index, score, optics.pixel_nm, first_frame + t0, shape,
                          n_frames, model.sigma_scale)  # fmt: skip

    starts = range(0, len(frames), chunk)
    workers = 1 if device.type != "cpu" else settings.workers or cpu_cores()
    parts = [Localizations.empty(optics.pixel_nm, shape, n_frames)]
    with cpu_fit_threads(device), ThreadPoolExecutor(max(1, min(workers, len(starts)))) as pool:
        for t0, part in zip(starts, pool.map(one_chunk, starts), strict=True):
            parts.append(part)
            if progress is not None:
                progress(min(chunk, len(frames) - t0))
    locs = concat(parts)
    if settings.max_uncertainty_nm is not None:
        locs = locs.select(locs["uncertainty_nm"] <= settings.max_uncertainty_nm)
    return locs
