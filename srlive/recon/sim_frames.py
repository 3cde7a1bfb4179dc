"""Raw SIM frames made ready for the Fourier domain (offset, brightness, border taper) and
the separation of a set's phases into its bands (pure functions)."""

from __future__ import annotations

import numpy as np

EDGE_PX = 24  # taper width used against FFT edge artefacts


def edge_taper(shape: tuple[int, int], edge_px: int = EDGE_PX) -> np.ndarray:
    """A window that is 1 inside and falls smoothly (cos²) to 0 over ``edge_px`` at the border."""

    def ramp(n: int) -> np.ndarray:
        w = np.ones(n, np.float32)
        e = min(edge_px, n // 4)
        if e > 0:
            t = (np.arange(e) + 0.5) / e
            w[:e] = np.sin(np.pi / 2 * t) ** 2
            w[-e:] = w[:e][::-1]
        return w

    return np.outer(ramp(shape[0]), ramp(shape[1]))


def prepare_frames(
    raw: np.ndarray, offset_adu: float, taper: np.ndarray, equalize: bool = True
) -> np.ndarray:
    """Offset-subtracted float32 frames, faded towards their mean at the borders.

    ``equalize`` scales every frame to the set's mean brightness (lasers and LEDs drift
    between frames; a fringe over many periods does not change a frame's mean).
    """
    frames = np.asarray(raw, np.float32).reshape(-1, *raw.shape[-2:]) - np.float32(offset_adu)
    means = frames.mean(axis=(1, 2), keepdims=True)
    if equalize:
        target = np.float32(means.mean())
        scale = np.where(means > 0, target / np.maximum(means, 1e-12), 1.0).astype(np.float32)
        frames = frames * scale
        means = means * scale
    return means + (frames - means) * taper


def separation_matrix(phases: np.ndarray) -> np.ndarray:
    """Inverse of the band-mixing matrix rows [1, e^{iφ}, e^{−iφ}] (least squares if > 3)."""
    mix = np.stack([np.ones_like(phases), np.exp(1j * phases), np.exp(-1j * phases)], axis=1)
    return np.linalg.pinv(mix)


def equal_phases(n_phases: int) -> np.ndarray:
    return 2 * np.pi * np.arange(n_phases) / n_phases
