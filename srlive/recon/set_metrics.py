"""Online metrics of one raw set, from what a real microscope sees (pure functions).

Everything here works on raw camera frames in ADU, the camera's noise model and the settings
the set was taken with; nothing needs the ground truth. Signal is expressed in photo-electrons
per pixel per frame, so it is comparable between cameras and settings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

DEFAULT_READ_NOISE_E = 1.6  # a typical sCMOS, when the camera does not say
PEAK_PERCENTILE = 99.0  # "peak" signal: bright structure pixels, robust to hot pixels
BACKGROUND_PERCENTILE = 5.0


@dataclass(frozen=True)
class NoiseModel:
    """An sCMOS camera's noise model: offset (ADU), gain (e⁻/ADU), read noise (e⁻ rms)."""

    offset_adu: float = 100.0
    e_per_adu: float = 0.46
    read_noise_e: float = 1.6
    max_adu: int = 65535

    @classmethod
    def from_camera(
        cls, offset_adu: float, e_per_adu: float | None, read_noise_e: float | None, bits: int
    ) -> NoiseModel:
        """A camera's noise model; unknown gain and read noise take typical sCMOS values."""
        return cls(
            offset_adu=offset_adu,
            e_per_adu=1.0 if e_per_adu is None else e_per_adu,
            read_noise_e=DEFAULT_READ_NOISE_E if read_noise_e is None else read_noise_e,
            max_adu=2**bits - 1,
        )

    def electrons(self, frames: np.ndarray) -> np.ndarray:
        """Frames in ADU → photo-electrons (float32, offset removed)."""
        return (np.asarray(frames, np.float32) - np.float32(self.offset_adu)) * np.float32(
            self.e_per_adu
        )


def widefield_mean(frames: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """The mean frame of a set in e⁻ per pixel (the equivalent widefield image per frame)."""
    frames = np.asarray(frames).reshape(-1, *np.shape(frames)[-2:])
    return noise.electrons(frames).mean(axis=0)


def peak_signal_e(widefield: np.ndarray) -> tuple[float, float]:
    """(peak signal above background, background) in e⁻ per pixel per frame.

    The widefield image is smoothed by one pixel first so that the percentile measures
    structure, not shot noise.
    """
    smooth = ndimage.gaussian_filter(np.asarray(widefield, np.float32), 1.0)
    background = float(np.percentile(smooth, BACKGROUND_PERCENTILE))
    peak = float(np.percentile(smooth, PEAK_PERCENTILE))
    return max(peak - background, 0.0), max(background, 0.0)


def snr(signal_e: float, background_e: float, read_noise_e: float) -> float:
    """Per-frame SNR of a pixel with ``signal_e`` above ``background_e`` (shot + read noise)."""
    variance = max(signal_e, 0.0) + max(background_e, 0.0) + read_noise_e**2
    return float(signal_e / math.sqrt(variance)) if variance > 0 else 0.0


CLIP_MIN_PIXELS = 8  # pixels piled up at the top of the range that mean clipping
CLIP_BAND = 0.0005  # "at the top": within this fraction of the top value (33 ADU of 65k)
CLIP_MIN_ADU = 1000.0  # ... when that value is this far above the offset (no camera clips lower)


def clipped(frames: np.ndarray, noise: NoiseModel = NoiseModel()) -> np.ndarray:
    """Which values are clipped: at the converter's last code, or piled up at the top.

    A camera clips at its full well or at its converter's last code, whichever comes first,
    and the full well in ADU is not always known. Pixels clipped at the full well pile up
    within read noise of one level; unclipped bright pixels spread over their shot noise
    (hundreds of ADU at the top of a 16-bit range), so only a handful lie within
    ``CLIP_BAND`` of the maximum.
    """
    frames = np.asarray(frames)
    at_code = frames >= noise.max_adu
    top = float(frames.max())
    if top - noise.offset_adu >= CLIP_MIN_ADU:
        piled = frames >= top - CLIP_BAND * (top - noise.offset_adu)
        if np.count_nonzero(piled) >= CLIP_MIN_PIXELS and piled.sum() > at_code.sum():
            return piled
    return at_code


def saturated_fraction(frames: np.ndarray, noise: NoiseModel = NoiseModel()) -> float:
    """Fraction of clipped pixels (see :func:`clipped`)."""
    frames = np.asarray(frames)
    return int(np.count_nonzero(clipped(frames, noise))) / frames.size


def motion_px(previous: np.ndarray | None, current: np.ndarray) -> float:
    """Shift (camera pixels) between two widefield images by phase correlation.

    A sub-pixel estimate from the centroid of the correlation peak's 3×3 neighbourhood;
    0 for the first set. Large values mean the sample moved (or drifted) between sets.
    """
    if previous is None or previous.shape != current.shape:
        return 0.0
    a = np.asarray(previous, np.float32)
    b = np.asarray(current, np.float32)
    fa = sfft.rfft2(a - a.mean())
    fb = sfft.rfft2(b - b.mean())
    cross = fa * np.conj(fb)
    cross /= np.maximum(np.abs(cross), 1e-12)
    corr = sfft.irfft2(cross, s=a.shape)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    ys = [(iy + d) % h for d in (-1, 0, 1)]
    xs = [(ix + d) % w for d in (-1, 0, 1)]
    patch = np.clip(corr[np.ix_(ys, xs)], 0.0, None)
    total = patch.sum() or 1.0
    dy = float((patch.sum(axis=1) * np.array([-1, 0, 1])).sum() / total)
    dx = float((patch.sum(axis=0) * np.array([-1, 0, 1])).sum() / total)
    sy = (iy + h // 2) % h - h // 2 + dy
    sx = (ix + w // 2) % w - w // 2 + dx
    return float(math.hypot(sy, sx))


def fit_bleaching(dose_mj: np.ndarray, brightness: np.ndarray) -> tuple[float, float]:
    """Fit ``brightness = b0·exp(−k·dose)``: returns (k per mJ, b0).

    ``brightness`` is signal per unit light (e⁻ per mW·ms) measured at each set and
    ``dose_mj`` the dose the sample had received before it. A least-squares line through
    log-brightness; k is clipped at 0 (fluorescence does not grow with dose). Fewer than
    two usable points, or no spread in dose, give k = 0.
    """
    d = np.asarray(dose_mj, np.float64)
    b = np.asarray(brightness, np.float64)
    ok = np.isfinite(d) & np.isfinite(b) & (b > 0)
    d, b = d[ok], b[ok]
    if d.size == 0:
        return 0.0, math.nan
    if d.size < 2 or np.ptp(d) <= 0:
        return 0.0, float(np.exp(np.mean(np.log(b))))
    slope, intercept = np.polyfit(d, np.log(b), 1)
    k = max(-float(slope), 0.0)
    if k == 0.0:
        return 0.0, float(np.exp(np.mean(np.log(b))))
    return k, float(np.exp(intercept))


def set_metrics(
    frames: np.ndarray,
    noise: NoiseModel,
    power_mw: float,
    exposure_ms: float,
    *,
    previous_widefield: np.ndarray | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of one raw set; returns (JSON-ready dict, its widefield mean image).

    ``signal_e`` and ``background_e`` are e⁻ per pixel per frame, ``brightness`` is the
    signal per unit light (e⁻ per mW·ms), ``snr`` the per-frame peak SNR, ``motion_px``
    the shift from the previous set's widefield image.
    """
    widefield = widefield_mean(frames, noise)
    signal, background = peak_signal_e(widefield)
    light = power_mw * exposure_ms
    metrics = {
        "signal_e": signal,
        "background_e": background,
        "mean_e": float(widefield.mean()),
        "snr": snr(signal, background, noise.read_noise_e),
        "brightness": signal / light if light > 0 else math.nan,
        "saturated_fraction": saturated_fraction(frames, noise),
        "motion_px": motion_px(previous_widefield, widefield),
    }
    return metrics, widefield


def sr_metrics(
    sr: np.ndarray | None, sr_pixel_nm: float, confidence: float | None
) -> dict[str, Any]:
    """SR quality signals: decorrelation resolution of the SR image, a model's confidence."""
    from srlive.recon.resolution import decorrelation_resolution_nm

    out: dict[str, Any] = {"resolution_nm": math.nan, "confidence": math.nan}
    if sr is not None and np.isfinite(sr).all():
        out["resolution_nm"] = decorrelation_resolution_nm(sr, sr_pixel_nm, n_radii=30, n_filters=6)
    if confidence is not None and math.isfinite(confidence):
        out["confidence"] = float(confidence)
    return out


@dataclass(frozen=True)
class SetMetrics:
    """What one acquired set measured, from its raw frames and settings alone.

    The live window plots it and the optimizer learns from it. Signal is in e⁻ per pixel per
    frame; ``surviving_fraction`` is the brightness per unit light relative to the series'
    first set; the dose fields are the sample's light dose before this set and what is left
    of its budget (None: no budget).
    """

    series: str
    modality: str
    t: int
    time_s: float
    power_mw: float
    exposure_ms: float
    signal_e: float
    background_e: float
    mean_e: float
    snr: float
    brightness: float
    saturated_fraction: float
    motion_px: float
    surviving_fraction: float = math.nan
    confidence: float = math.nan  # the series' latest SR confidence (learned methods)
    dose_before_mj: float = math.nan
    remaining_budget_mj: float | None = None

    @property
    def signal(self) -> float:
        return self.signal_e

    @property
    def bleaching(self) -> float:
        return 1.0 - self.surviving_fraction

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``bleaching``."""
        return {**asdict(self), "bleaching": self.bleaching}
