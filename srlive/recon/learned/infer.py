"""Running a learned model on raw frames, with a confidence score for every output.

Confidence combines what the model says about itself (its predicted per-pixel error) with
physical checks of the input that a network cannot see for itself (saturation; the
acquisition's geometry against the range the model was trained on; for burst models how
clearly the frames fluctuate): see :mod:`srlive.recon.learned.trust` for how they become one
expected error and a confidence. The checks and the predicted error are reported with every
result, the error also as a map (``Result.uncertainty``, image units).

A burst that does not fluctuate supports no fluctuation super-resolution, as a SIM set
without a measured fringe supports none: burst models' confidence is multiplied by
``1 − exp(−(z / 4)²)``, ``z`` the frames' fluctuation significance
(:func:`~srlive.recon.fluctuation.sofi.fluctuation_significance`; 0 for identical frames,
0.06 at noise level z = 1, 0.63 at z = 4, ≈ 1 beyond z = 8).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from srlive.recon.fluctuation.sofi import fluctuation_significance
from srlive.recon.learned.geometry import (
    PERIOD_JITTER,
    Geometry,
    geometry_mismatch,
    range_mismatch,
)
from srlive.recon.learned.model_input import model_planes
from srlive.recon.learned.models import SRUNet, error_scale
from srlive.recon.learned.pattern_input import BandGeometry, normalise_bands
from srlive.recon.learned.single_phase_input import FringeTracker
from srlive.recon.learned.trust import (
    GEOMETRY_ERROR,
    SINGLE_GEOMETRY_ERROR,
    confidence,
    expected_error,
)
from srlive.recon.learned.weights import bf16_supported, load_weights
from srlive.recon.learned.weights_meta import resolve_weights
from srlive.recon.set_metrics import NoiseModel, clipped

FLUCTUATION_Z = 4.0  # fluctuation significance (noise sd) that costs 1/e of the confidence

__all__ = ["Geometry", "LearnedReconstructor", "Result", "learned", "resolve_weights"]


@dataclass
class Result:
    """One reconstruction in the input's ADU-per-camera-pixel units, and how far to trust it."""

    image: np.ndarray
    confidence: float
    uncertainty: np.ndarray | None = None  # expected |error| per output pixel (image units)
    checks: dict[str, float] = field(default_factory=dict)


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_precision(device: torch.device, precision: str = "auto") -> torch.dtype:
    """Compute dtype: bf16 on CPUs with native bf16 units, fp16 on CUDA, else fp32."""
    if precision != "auto":
        try:
            return PRECISIONS[precision]
        except KeyError:
            raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}") from None
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if bf16_supported() else torch.float32


def dynamic_range(image: torch.Tensor, exclude: torch.Tensor | None = None) -> float:
    """Robust range of an image: 99.9th minus 0.1th percentile (on at most 64k samples),
    outside the ``exclude`` mask where it leaves enough of the image."""
    flat = image.detach().float().numpy().reshape(-1)  # one copy of a channels-last view
    if exclude is not None and int((~exclude).sum()) >= 0.1 * flat.size:
        flat = flat[~exclude.numpy().reshape(-1)]
    if flat.size > 65536:
        flat = flat[:: flat.size // 65536]
    low, high = np.percentile(flat, [0.1, 99.9])
    return float(high - low)


class LearnedReconstructor:
    """A loaded model, the normalisation around it, and its confidence score.

    On CUDA the input is staged in pinned host memory and copied without blocking on the
    model's own stream; the output comes back the same way.
    """

    def __init__(
        self,
        weights: str | Path,
        device: str = "auto",
        offset_adu: float = 100.0,
        precision: str = "auto",
        geometry: Geometry | None = None,
    ) -> None:
        self.path = resolve_weights(weights)
        model, task, info = load_weights(self.path)
        self.task, self.info = task, info
        self.device = pick_device(device)
        self.dtype = pick_precision(self.device, precision)
        # Module.to(memory_format=...) is documented; torch's stubs lack that overload
        channels_last = model.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model: SRUNet = channels_last.eval()
        self.offset_adu = offset_adu
        trust = info.get("trust", {})
        self.e90 = float(trust.get("predicted_error_p90", math.nan))
        self.pattern_missing_error = float(trust.get("pattern_missing_error", 0.0))
        self._jitter = float(info.get("sim", {}).get("period_jitter", PERIOD_JITTER))
        self.geometry = geometry or Geometry()
        self.mismatch = self._mismatch(self.geometry)
        self._cuda = self.device.type == "cuda"
        self._stream = torch.cuda.Stream(self.device) if self._cuda else None
        self._pinned: dict[tuple[int, ...], torch.Tensor] = {}

    def with_geometry(self, geometry: Geometry) -> LearnedReconstructor:
        """The same loaded model, its inputs judged against another acquisition geometry."""
        other = copy.copy(self)
        other.geometry = geometry
        other.mismatch = other._mismatch(geometry)
        return other

    def _mismatch(self, geometry: Geometry) -> float:
        """How far ``geometry`` lies outside what the model was trained for (0: inside)."""
        ranges = self.info.get("sim", {})
        if self.task.pattern_bands and "psf_px" in ranges:
            return range_mismatch(geometry, ranges["psf_px"], ranges["frequency"])
        return geometry_mismatch(bool(self.task.pattern_frames), self._jitter, geometry)

    @property
    def ranged(self) -> bool:
        """Trained across a range of microscopes (the ranges are in its weights)."""
        return self.task.pattern_bands and "psf_px" in self.info.get("sim", {})

    def _band_input(
        self, x: np.ndarray, norm: float, fringe: FringeTracker | None = None
    ) -> tuple[np.ndarray, int]:
        """Band planes of offset-free frames (pattern measured; a live series' ``fringe``
        tracks it across sets) and the angles whose fringe was found."""
        g = self.geometry
        if g.pattern_period_nm is None:
            raise ValueError(f"{self.task.name} needs the pattern's nominal period (geometry)")
        geometry = BandGeometry(g.pixel_nm, g.na, g.emission_nm, g.pattern_period_nm)
        if fringe is not None and self.task.inputs == "single-phase":
            planes, found = fringe.features(x, geometry)
        else:
            planes, found = model_planes(self.task.inputs, x, geometry)
        return normalise_bands(planes, norm), found

    @property
    def precision_name(self) -> str:
        """The compute dtype as reports name it (``float32``, ``bfloat16``, ``float16``)."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def upscale(self) -> int:
        """Output pixels per camera pixel along each axis."""
        return 2 if self.task.pattern_bands else self.model.config.upscale

    @property
    def frames_per_set(self) -> int:
        """Raw frames one reconstruction takes."""
        if self.task.pattern_bands:
            return len(self.task.pattern_frames)
        return self.task.in_channels

    @property
    def has_uncertainty(self) -> bool:
        return self.model.config.uncertainty

    def describe(self) -> str:
        return (
            f"{self.task.name} on {self.device.type} ({self.precision_name}), "
            f"{self.info.get('parameters')} parameters, {self.info.get('steps')} steps"
        )

    # --- inference -------------------------------------------------------------------
    def _stack(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames).reshape(-1, *np.shape(frames)[-2:])
        n = self.frames_per_set
        if x.shape[0] != n:
            raise ValueError(f"{self.task.name} takes {n} frame(s), got {x.shape[0]}")
        return x

    def _pad(self, x: np.ndarray) -> np.ndarray:
        """Mirror-pad H and W up to the model's size multiple (cropped off the output)."""
        m = self.model.config.size_multiple
        h, w = x.shape[-2:]
        extra = ((0, 0), (0, -h % m), (0, -w % m))
        return x if extra[1][1] == extra[2][1] == 0 else np.pad(x, extra, mode="symmetric")

    def _to_device(self, x: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
        if not self._cuda:
            return host.contiguous(memory_format=torch.channels_last)
        pinned = self._pinned.get(host.shape)
        if pinned is None:
            pinned = self._pinned[host.shape] = torch.empty(host.shape).pin_memory()
        pinned.copy_(host)
        with torch.cuda.stream(self._stream):
            return pinned.to(self.device, non_blocking=True).contiguous(
                memory_format=torch.channels_last
            )

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(self.device.type, self.dtype, enabled=self.dtype != torch.float32)
        stream = self._stream
        if stream is None:  # on the CPU
            with autocast:
                return self.model(x).float()
        with torch.cuda.stream(stream), autocast:
            y = self.model(x).float()
        out = y.to("cpu", non_blocking=True)
        stream.synchronize()
        return out

    def __call__(
        self, frames: np.ndarray, trust: bool = True, fringe: FringeTracker | None = None
    ) -> Result:
        """Reconstruct one set of raw frames (C, H, W) in ADU.

        ``fringe``: a live series' :class:`FringeTracker` (3-frame model: the fringe measured
        blind every few sets, in between only the set's phases); without it every set is
        measured blind.
        """
        stack = self._stack(frames)
        x = stack.astype(np.float32) - np.float32(self.offset_adu)
        norm = max(float(np.percentile(x.mean(axis=0), 99.5)), 1.0)
        checks: dict[str, float] = {}
        if self.task.pattern_bands:
            model_input, found = self._band_input(x, norm, fringe)
            checks["pattern_angles_found"] = found
        else:
            model_input = x / np.float32(norm)
        y = self._run(self._to_device(self._pad(model_input)))[0]
        up = self.model.config.upscale
        y = y[:, : up * model_input.shape[-2], : up * model_input.shape[-1]]
        image = (y[0] * norm).numpy()
        if not trust:
            return Result(image, math.nan)
        uncertainty = None
        predicted = math.nan
        clip = clipped(stack, NoiseModel(offset_adu=self.offset_adu))
        sat = float(clip.mean())
        checks["saturated_fraction"] = sat
        if self.has_uncertainty:
            scale = error_scale(y[1])
            uncertainty = (scale * norm).numpy()
            # the range the error is judged against: where the camera measured (clipped
            # plateaus would stretch it and make every error look small)
            exclude = _clipped_region(clip, image.shape) if sat else None
            predicted = float(scale.mean()) / max(dynamic_range(y[0], exclude), 1e-6)
            checks["predicted_error"] = predicted
        checks["geometry_mismatch"] = self.mismatch
        geometry_error = GEOMETRY_ERROR if self.ranged else SINGLE_GEOMETRY_ERROR
        missing = 0.0
        if "pattern_angles_found" in checks:  # resolution no measured fringe gave
            angles = len(self.task.pattern_frames) if self.task.inputs == "single-phase" else 3
            missing = (1.0 - checks["pattern_angles_found"] / angles) * self.pattern_missing_error
        expected = expected_error(predicted, sat, self.mismatch, geometry_error, missing)
        checks["expected_error"] = expected
        score = confidence(expected, self.e90)
        if self.task.fluctuation:
            z = fluctuation_significance(x)
            checks["fluctuation_z"] = z
            score *= -math.expm1(-((max(z, 0.0) / FLUCTUATION_Z) ** 2))
        return Result(image, score, uncertainty, checks)


CLIP_MARGIN_PX = 2  # camera pixels around a clipped one whose output the clipping shapes


def _clipped_region(clip: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """Output pixels near a clipped camera pixel (any frame), on the output's grid."""
    from scipy import ndimage

    region = ndimage.binary_dilation(clip.any(axis=0), iterations=CLIP_MARGIN_PX)
    up = shape[0] // region.shape[0]
    return torch.from_numpy(np.kron(region, np.ones((up, up), bool))[: shape[0], : shape[1]])


_CACHE: dict[tuple, LearnedReconstructor] = {}


def learned(
    method: str, device: str = "auto", offset_adu: float = 100.0, geometry: Geometry | None = None
) -> LearnedReconstructor:
    """A cached :class:`LearnedReconstructor` for a shipped model name or weights path."""
    key = (str(method), device, offset_adu, geometry)
    if key not in _CACHE:
        _CACHE[key] = LearnedReconstructor(method, device, offset_adu, geometry=geometry)
    return _CACHE[key]
