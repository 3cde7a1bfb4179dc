"""Structured illumination computed from the image the SLM actually shows.

A binary ferroelectric SLM acts as a phase modulator (pixel > 0 → phase π). It is imaged
onto the sample; a pupil mask keeps the diffraction orders that fit in the objective pupil
(illumination NA = λ_exc·|k| ≤ NA) and blocks the 0th order. The kept orders interfere at
the sample: for a grating the ±1 orders give a cosine fringe of half the grating period.
The interference (cross) terms are scaled by a modulation depth < 1 (polarisation,
coherence, out-of-focus light). A uniform SLM, or one whose in-pupil orders carry almost no
power, gives uniform widefield illumination.

Coordinates: the pixel (i, j) of an array of shape (H, W) with pixel ``p`` has its centre at
``y = (i − (H−1)/2)·p``, ``x = (j − (W−1)/2)·p``; wavevectors are (ky, kx) in cycles/nm and
angles are measured from +x towards +y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

from srlive.acquisition.slm_patterns import draw_grating  # what srlive shows on the SLM

MIN_ORDER_POWER = 0.01  # fraction of the SLM's diffracted power


@dataclass(frozen=True)
class IlluminationPattern:
    """Intensity = dc + Σ amplitude·cos(2π(ky·y + kx·x) + phase); mean intensity 1."""

    components: tuple[tuple[float, float, float, float], ...] = ()
    dc: float = 1.0

    @property
    def is_uniform(self) -> bool:
        return not self.components

    @property
    def modulation(self) -> float:
        return max((c[2] for c in self.components), default=0.0)

    def _strongest(self) -> tuple[float, float, float, float]:
        if not self.components:
            raise ValueError("uniform illumination has no fringe")
        return max(self.components, key=lambda c: c[2])

    @property
    def period_nm(self) -> float:
        ky, kx, _, _ = self._strongest()
        return 1.0 / float(np.hypot(ky, kx))

    @property
    def angle_rad(self) -> float:
        ky, kx, _, _ = self._strongest()
        return float(np.arctan2(ky, kx))

    @property
    def phase_rad(self) -> float:
        return float(self._strongest()[3])

    def intensity(self, shape: tuple[int, int], pixel_nm: float) -> np.ndarray:
        """The illumination intensity sampled on a grid (float32)."""
        y, x = grid_coordinates(shape, pixel_nm)
        out = np.full(shape, self.dc, np.float32)
        for ky, kx, amp, phase in self.components:
            out += np.float32(amp) * np.cos(2 * np.pi * (ky * y + kx * x) + phase).astype(
                np.float32
            )
        return out


def grid_coordinates(shape: tuple[int, int], pixel_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Broadcastable (y, x) pixel-centre coordinates in nm, origin at the array centre."""
    y = (np.arange(shape[0]) - (shape[0] - 1) / 2) * pixel_nm
    x = (np.arange(shape[1]) - (shape[1] - 1) / 2) * pixel_nm
    return y[:, None], x[None, :]


def _zoom_dft(field: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """DTFT of ``field`` at frequencies fy × fx (cycles/pixel), origin at the array centre."""
    y, x = grid_coordinates(field.shape, 1.0)
    ay = np.exp(-2j * np.pi * fy[:, None] * y[:, 0][None, :])
    ax = np.exp(-2j * np.pi * x[0][:, None] * fx[None, :])
    return ay @ field @ ax


def _refine_peak(
    field: np.ndarray, fy0: float, fx0: float, weight: float
) -> tuple[float, float, complex]:
    """Sub-bin frequency and complex amplitude of a peak by successive zoomed DFTs.

    ``field`` is already windowed; ``weight`` is the window's sum (amplitude normalisation).
    """
    n, m = field.shape
    step_y, step_x = 1.0 / n, 1.0 / m
    fy, fx = fy0, fx0
    for _ in range(5):
        gy = fy + step_y * np.linspace(-1, 1, 9)
        gx = fx + step_x * np.linspace(-1, 1, 9)
        values = np.abs(_zoom_dft(field, gy, gx))
        iy, ix = np.unravel_index(np.argmax(values), values.shape)
        fy, fx = gy[iy], gx[ix]
        step_y, step_x = step_y / 4, step_x / 4
    value = _zoom_dft(field, np.array([fy]), np.array([fx]))[0, 0]
    return float(fy), float(fx), complex(value) / weight


def _central_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = min(shape[0], image.shape[0]), min(shape[1], image.shape[1])
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[y0 : y0 + h, x0 : x0 + w]


def illumination_from_slm(
    slm_image: np.ndarray,
    slm_pixel_nm_at_sample: float,
    na: float,
    excitation_nm: float,
    modulation_depth: float = 0.8,
    fov_nm: tuple[float, float] | None = None,
    max_orders: int = 6,
) -> IlluminationPattern:
    """The illumination pattern at the sample for the image the SLM shows."""
    image = np.asarray(slm_image)
    if fov_nm is not None:
        crop = (
            int(np.ceil(fov_nm[0] / slm_pixel_nm_at_sample)),
            int(np.ceil(fov_nm[1] / slm_pixel_nm_at_sample)),
        )
        image = _central_crop(image, crop)
    field = np.where(image > 0, -1.0, 1.0).astype(np.complex64)  # phase 0 / π
    if np.all(field == field.flat[0]):
        return IlluminationPattern()
    window = np.outer(np.hanning(field.shape[0]), np.hanning(field.shape[1])).astype(np.float32)
    windowed = (field - (field * window).sum() / window.sum()) * window  # 0th order blocked
    spectrum = sfft.fft2(windowed, workers=-1)
    power = np.abs(spectrum) ** 2
    total = float(power.sum())
    fy = np.fft.fftfreq(field.shape[0])[:, None]
    fx = np.fft.fftfreq(field.shape[1])[None, :]
    k_sample = np.hypot(fy, fx) / slm_pixel_nm_at_sample
    in_pupil = (k_sample * excitation_nm <= na) & (
        np.hypot(fy * field.shape[0], fx * field.shape[1]) > 2
    )
    candidate = np.where(in_pupil, power, 0.0)
    orders: list[tuple[float, float, complex]] = []
    for _ in range(max_orders):
        index = np.unravel_index(np.argmax(candidate), candidate.shape)
        if candidate[index] < MIN_ORDER_POWER * total / 4:
            break
        py, px = float(fy[index[0], 0]), float(fx[0, index[1]])
        orders.append(_refine_peak(windowed, py, px, float(window.sum())))
        iy, ix = index
        rows = np.arange(iy - 6, iy + 7) % candidate.shape[0]
        cols = np.arange(ix - 6, ix + 7) % candidate.shape[1]
        candidate[np.ix_(rows, cols)] = 0
    order_power = sum(abs(a) ** 2 for _, _, a in orders)
    if len(orders) < 2 or order_power < MIN_ORDER_POWER:
        return IlluminationPattern()
    components = []
    for j in range(len(orders)):
        for k in range(j + 1, len(orders)):
            fy_j, fx_j, a_j = orders[j]
            fy_k, fx_k, a_k = orders[k]
            ky = (fy_j - fy_k) / slm_pixel_nm_at_sample
            kx = (fx_j - fx_k) / slm_pixel_nm_at_sample
            phase = float(np.angle(a_j) - np.angle(a_k))
            if np.arctan2(ky, kx) < -1e-9 or np.arctan2(ky, kx) >= np.pi - 1e-9:
                ky, kx, phase = -ky, -kx, -phase  # canonical: angle in [0, π)
            amplitude = modulation_depth * 2 * abs(a_j) * abs(a_k) / order_power
            if amplitude > 1e-3:
                components.append((ky, kx, amplitude, float(np.angle(np.exp(1j * phase)))))
    return IlluminationPattern(components=tuple(components), dc=1.0)


def sim_pattern_set(
    shape_slm: tuple[int, int],
    period_nm: float,
    slm_pixel_nm_at_sample: float,
    angles_rad: tuple[float, ...] = (0.0, np.pi / 3, 2 * np.pi / 3),
    n_phases: int = 3,
) -> list[np.ndarray]:
    """The SLM images of a SIM set, angle-major (a0p0, a0p1, …, a1p0, …)."""
    period_px = 2.0 * period_nm / slm_pixel_nm_at_sample
    return [
        draw_grating(shape_slm, period_px, angle, 2 * np.pi * p / n_phases)
        for angle in angles_rad
        for p in range(n_phases)
    ]
