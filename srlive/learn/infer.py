"""Running a learned model on raw frames, with a confidence score for every output.

Confidence combines two independent checks, each scaled by its typical value on held-in
simulated data (stored with the weights at calibration):

* *disagreement*: the model run on the input rotated by 90° (and rotated back) should give
  the same image; structures unlike the training data make the two disagree;
* *data consistency*: the SR output, blurred by the widefield optics and binned to the
  camera grid, should reproduce the mean raw frame; a wrong pattern period, saturation or
  hallucinated structure leaves a residual.

``confidence = exp(−(d/d₀ + c/c₀)/2)`` lies in (0, 1]; about e⁻¹ on typical training data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from srlive.learn.data import CAMERA_NM, EMISSION_NM, NA
from srlive.learn.models import SRUNet
from srlive.learn.train import WEIGHTS_DIR, load_weights
from srlive.recon.otf import widefield_otf

TRUST_CROP = 256  # the disagreement pass runs on a central crop of this size (camera pixels)


@dataclass
class Result:
    """One reconstruction: image in the input's ADU-per-camera-pixel units, and its trust."""

    image: np.ndarray
    confidence: float
    disagreement: float
    inconsistency: float


def resolve_weights(name_or_path: str | Path) -> Path:
    """A shipped model by name (``dl-sim3``) or a path to a .safetensors file."""
    path = Path(name_or_path)
    if path.suffix == ".safetensors":
        return path
    shipped = WEIGHTS_DIR / f"{name_or_path}.safetensors"
    if not shipped.exists():
        raise FileNotFoundError(
            f"no shipped weights for {name_or_path!r} (expected {shipped}); train them with "
            f"`srlive train {name_or_path}`"
        )
    return shipped


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LearnedReconstructor:
    """A loaded model plus the normalisation and trust computations around it."""

    def __init__(
        self, weights: str | Path, device: str = "auto", offset_adu: float = 100.0
    ) -> None:
        self.path = resolve_weights(weights)
        model, task, info = load_weights(self.path)
        self.task, self.info = task, info
        self.device = pick_device(device)
        self.model: SRUNet = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.offset_adu = offset_adu
        trust = info.get("trust", {})
        self.d0 = float(trust.get("disagreement", 0.05))
        self.c0 = float(trust.get("inconsistency", 0.05))
        self._otf_cache: dict[tuple[int, int], torch.Tensor] = {}

    @property
    def upscale(self) -> int:
        return self.model.config.upscale

    def _normalise(self, frames: np.ndarray) -> tuple[torch.Tensor, float]:
        x = np.asarray(frames, np.float32).reshape(-1, *frames.shape[-2:]) - self.offset_adu
        if x.shape[0] != self.task.in_channels:
            raise ValueError(
                f"{self.task.name} takes {self.task.in_channels} frame(s), got {x.shape[0]}"
            )
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"frame size must be a multiple of 4, got {x.shape[-2:]}")
        norm = max(float(np.percentile(x.mean(axis=0), 99.5)), 1.0)
        tensor = torch.from_numpy(x / norm)[None].to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last), norm

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def __call__(self, frames: np.ndarray, trust: bool = True) -> Result:
        """Reconstruct one set of raw frames (C, H, W) in ADU."""
        x, norm = self._normalise(frames)
        y = self._run(x)
        image = (y[0, 0] * norm).float().cpu().numpy()
        if not trust:
            return Result(image, math.nan, math.nan, math.nan)
        d = self._disagreement(x, y)
        c = self._inconsistency(x, y)
        confidence = math.exp(-0.5 * (d / self.d0 + c / self.c0))
        return Result(image, confidence, d, c)

    def _disagreement(self, x: torch.Tensor, y: torch.Tensor) -> float:
        h, w = x.shape[-2:]
        s = min(TRUST_CROP, h, w) // 4 * 4
        y0, x0 = (h - s) // 2 // 4 * 4, (w - s) // 2 // 4 * 4
        crop = x[..., y0 : y0 + s, x0 : x0 + s]
        rotated = torch.rot90(
            self._run(torch.rot90(crop, 1, (-2, -1)).contiguous(memory_format=torch.channels_last)),
            -1,
            (-2, -1),
        )
        r = self.upscale
        reference = y[..., r * y0 : r * (y0 + s), r * x0 : r * (x0 + s)]
        scale = reference.abs().mean().clamp_min(1e-6)
        return float((rotated - reference).abs().mean() / scale)

    def _forward_otf(self, shape: tuple[int, int]) -> torch.Tensor:
        if shape not in self._otf_cache:
            otf = widefield_otf(shape, CAMERA_NM / self.upscale, NA, EMISSION_NM)
            self._otf_cache[shape] = torch.from_numpy(otf).to(self.device)
        return self._otf_cache[shape]

    def _inconsistency(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Relative residual between the blurred, binned output and the mean raw frame."""
        out = y[0, 0].float()
        if not self.task.super_resolve:  # a widefield output is compared as it is
            blurred = out
        else:
            otf = self._forward_otf(tuple(out.shape))
            blurred = torch.fft.ifft2(torch.fft.fft2(out) * otf).real
            blurred = F.avg_pool2d(blurred[None, None], self.upscale)[0, 0]
        mean_frame = x[0].float().mean(0)
        return float((blurred - mean_frame).abs().mean() / mean_frame.abs().mean().clamp_min(1e-6))


def calibrate_trust(path: str | Path, n_pairs: int = 16, size: int = 128) -> dict[str, float]:
    """Typical disagreement and inconsistency on held-in data; stored with the weights."""
    from srlive.learn.data import make_pair
    from srlive.learn.train import save_weights

    recon = LearnedReconstructor(path, device="cpu")
    d, c = [], []
    for i in range(n_pairs):
        x, _, info = make_pair(recon.task, size, seed=700_000_000 + i)
        frames = x * info["norm_adu"] + recon.offset_adu
        result = recon(frames)
        d.append(result.disagreement)
        c.append(result.inconsistency)
    trust = {
        "disagreement": float(np.median(d)),
        "inconsistency": float(np.median(c)),
        "pairs": n_pairs,
    }
    save_weights(
        recon.model.cpu().to(memory_format=torch.contiguous_format),
        recon.task,
        Path(path),
        {**recon.info, "trust": trust},
    )
    return trust


_CACHE: dict[tuple[str, str, float], LearnedReconstructor] = {}


def learned(method: str, device: str = "auto", offset_adu: float = 100.0) -> LearnedReconstructor:
    """A cached :class:`LearnedReconstructor` for a shipped model name or weights path."""
    key = (str(method), device, offset_adu)
    if key not in _CACHE:
        _CACHE[key] = LearnedReconstructor(method, device, offset_adu)
    return _CACHE[key]


def describe(info: dict[str, Any]) -> str:
    return f"{info.get('task')} ({info.get('parameters')} parameters, {info.get('steps')} steps)"
