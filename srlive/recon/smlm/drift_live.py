"""Drift correction while localisations stream in: redundant cross-correlation on a rolling
window of blocks.

Frames are cut into blocks of ``block_frames``. When a block is complete its (uncorrected)
localisations are rendered as a smoothed histogram and cross-correlated with the previous
``window`` blocks' (every pair of the window, as :mod:`srlive.recon.smlm.drift` does for a
whole acquisition); the least-squares drifts of the window, anchored on the older blocks'
known drifts, give the new block's drift (block 0 defines zero). Frames after the newest
block are corrected by extrapolating the last two blocks' drifts linearly (held flat until
two are known), so each localisation is corrected once, as it arrives; earlier ones are not
moved again.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from srlive.recon.smlm.drift import SMOOTH_PX, _pair_shifts, _solve
from srlive.recon.smlm.table import Localizations

DEFAULT_BLOCK_FRAMES = 500
DEFAULT_WINDOW = 4
MAX_DRIFT_NM = 1000.0


class RollingDrift:
    """The sample's drift, estimated block by block from the localisations seen so far."""

    def __init__(
        self,
        frame_shape: tuple[int, int],
        pixel_nm: float,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        window: int = DEFAULT_WINDOW,
        render_nm: float = 20.0,
    ) -> None:
        if block_frames < 1 or window < 1:
            raise ValueError("drift blocks need >= 1 frame and a window of >= 1 block")
        self.block_frames, self.window, self.render_nm = block_frames, window, render_nm
        field = (frame_shape[0] * pixel_nm, frame_shape[1] * pixel_nm)
        self.shape = (
            max(8, int(np.ceil(field[0] / render_nm))),
            max(8, int(np.ceil(field[1] / render_nm))),
        )
        self.images: list[np.ndarray] = []  # the last ``window`` blocks' images
        self.drifts: list[np.ndarray] = []  # (y, x) nm of every block so far
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # frame, y, x

    @property
    def blocks(self) -> int:
        return len(self.drifts)

    def at(self, frames: np.ndarray) -> np.ndarray:
        """The drift (n, 2) (y, x nm) to subtract from localisations of ``frames``."""
        frames = np.asarray(frames, np.float64)
        if not self.drifts:
            return np.zeros((len(frames), 2))
        last = self.drifts[-1]
        if len(self.drifts) < 2:
            return np.broadcast_to(last, (len(frames), 2)).copy()
        slope = (last - self.drifts[-2]) / self.block_frames
        centre = (len(self.drifts) - 0.5) * self.block_frames
        return last + (frames - centre)[:, None] * slope

    def add(self, locs: Localizations) -> None:
        """Uncorrected localisations of the next frames (in order); completes blocks."""
        frame = np.asarray(locs["frame"], np.int64)
        self._pending.append((frame, np.asarray(locs["y_nm"]), np.asarray(locs["x_nm"])))
        end = (self.blocks + 1) * self.block_frames
        while locs.n_frames >= end:
            self._close_block(end)
            end = (self.blocks + 1) * self.block_frames

    def _close_block(self, end: int) -> None:
        frame = np.concatenate([p[0] for p in self._pending])
        y = np.concatenate([p[1] for p in self._pending])
        x = np.concatenate([p[2] for p in self._pending])
        inside = frame < end
        image = self._image(y[inside], x[inside])
        keep = ~inside
        self._pending = [(frame[keep], y[keep], x[keep])]
        self.images = [*self.images[-self.window :], image]
        self.drifts.append(self._new_drift())

    def _image(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        iy = np.clip((y / self.render_nm).astype(np.int64), 0, self.shape[0] - 1)
        ix = np.clip((x / self.render_nm).astype(np.int64), 0, self.shape[1] - 1)
        hist = np.bincount(iy * self.shape[1] + ix, minlength=self.shape[0] * self.shape[1])
        return ndimage.gaussian_filter(hist.reshape(self.shape).astype(np.float32), SMOOTH_PX)

    def _new_drift(self) -> np.ndarray:
        """The newest block's drift (y, x nm) from the window's pairs."""
        n = len(self.images)
        if n < 2 or not all(im.any() for im in self.images):
            return self.drifts[-1].copy() if self.drifts else np.zeros(2)
        max_shift = int(min(MAX_DRIFT_NM / self.render_nm, min(self.shape) // 2 - 2))
        pairs, shifts = _pair_shifts(self.images, max(max_shift, 1))
        relative = _solve(pairs, shifts, n, np.ones(len(pairs), bool))
        if relative is None:
            return self.drifts[-1].copy()
        relative = relative * self.render_nm
        known = np.asarray(self.drifts[-(n - 1) :])
        return np.mean(known + (relative[-1] - relative[:-1]), axis=0)
