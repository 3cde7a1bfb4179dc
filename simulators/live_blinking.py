"""Blinking dyes that persist across the live world's frames.

Dye sites are fixed to the simulation grid: pixel ``p`` holds slots ``k = 0, 1, …`` and slot
``k`` is occupied while ``k < N_p``, where ``N_p`` is a Poisson count of mean
``density_p · per_unit`` drawn by inverting its CDF at a uniform fixed per pixel. The count is
monotone in the density, so a static sample keeps every dye from frame to frame and a slowly
moving one keeps them where the structure stays, gaining and losing dyes only where its
density changes. A site's position within its pixel, relative brightness and bleaching
threshold are hashed from its id (nothing stored per pixel); its on/off state is carried from
frame to frame (and across darkness between frames) by :mod:`simulators.blinking`.

Bleaching follows the world's dose (one source of truth): a dye is bleached once the
surviving fraction falls below its threshold, so the chain itself runs without bleaching.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.special import ndtri

from simulators.blinking import SwitchingDye, integrate_exposure, jump, stationary_states
from simulators.illumination import IlluminationPattern

MAX_PER_PIXEL = 32
REFERENCE_POWER_MW = 20.0  # the mean frame equals the continuous-dye frame at this power
_MASK64 = (1 << 64) - 1


def hash_uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """A fixed pseudo-random uniform in [0, 1) per integer key (splitmix64 finaliser)."""
    z = np.asarray(keys).astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & _MASK64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def poisson_counts(lam: np.ndarray, u: np.ndarray, cap: int = MAX_PER_PIXEL) -> np.ndarray:
    """Poisson(``lam``) counts by inverting the CDF at ``u`` (monotone in ``lam``), ≤ ``cap``."""
    lam = np.asarray(lam, np.float64)
    term = np.exp(-lam)
    cdf = term.copy()
    counts = np.zeros(lam.shape, np.int64)
    for k in range(1, cap + 1):
        beyond = u >= cdf
        if not beyond.any():
            break
        counts += beyond
        term = term * lam / k
        cdf = cdf + term
    return counts


def illumination_at(pattern: IlluminationPattern, positions_nm: np.ndarray) -> np.ndarray:
    """The illumination intensity at points (same coordinates as the grid's)."""
    out = np.full(len(positions_nm), pattern.dc, np.float32)
    y, x = positions_nm[:, 0], positions_nm[:, 1]
    for ky, kx, amplitude, phase in pattern.components:
        out += np.float32(amplitude) * np.cos(2 * np.pi * (ky * y + kx * x) + phase)
    return out


class LiveBlinking:
    """The live world's blinking dyes on a ``shape`` grid of ``pixel_nm`` pixels."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_nm: float,
        density_per_um: float = 50.0,
        seed: int = 0,
        dye: SwitchingDye | None = None,
        brightness_sigma: float = 0.3,
    ) -> None:
        self.shape = shape
        self.pixel_nm = pixel_nm
        self.per_unit = density_per_um * pixel_nm / 1000.0
        self.seed = seed
        self.dye = dye or SwitchingDye()
        self.brightness_sigma = brightness_sigma
        self.ids = np.empty(0, np.int64)
        self.positions_nm = np.empty((0, 2), np.float32)
        self.brightness = np.empty(0, np.float32)
        self.threshold = np.empty(0, np.float64)
        self.states = np.empty(0, np.int8)  # -1: not yet drawn

    def __len__(self) -> int:
        return self.ids.size

    def place(self, density: np.ndarray) -> None:
        """Occupy the sites the density now labels; dyes already there keep their state."""
        if density.shape != self.shape:
            raise ValueError(f"density shape {density.shape} is not the grid {self.shape}")
        lam = np.clip(density.ravel(), 0, None).astype(np.float64) * self.per_unit
        pixels = np.flatnonzero(lam > 0)
        counts = poisson_counts(lam[pixels], hash_uniform(pixels, self.seed * 8 + 1))
        starts = np.cumsum(counts) - counts
        slot = np.arange(int(counts.sum())) - np.repeat(starts, counts)
        pixel_of = np.repeat(pixels, counts)
        ids = pixel_of * MAX_PER_PIXEL + slot  # ascending: pixels ascending, slots within
        iy, ix = np.divmod(pixel_of, self.shape[1])
        jy = hash_uniform(ids, self.seed * 8 + 2) - 0.5
        jx = hash_uniform(ids, self.seed * 8 + 3) - 0.5
        y = (iy + jy - (self.shape[0] - 1) / 2) * self.pixel_nm
        x = (ix + jx - (self.shape[1] - 1) / 2) * self.pixel_nm
        sigma = self.brightness_sigma
        z = ndtri(np.clip(hash_uniform(ids, self.seed * 8 + 4), 1e-12, 1 - 1e-12))
        states = np.full(ids.size, -1, np.int8)
        if self.ids.size and ids.size:
            where = np.clip(np.searchsorted(self.ids, ids), 0, self.ids.size - 1)
            known = self.ids[where] == ids
            states[known] = self.states[where[known]]
        self.ids = ids
        self.positions_nm = np.stack([y, x], axis=1).astype(np.float32)
        self.brightness = np.exp(sigma * z - sigma**2 / 2).astype(np.float32)
        self.threshold = hash_uniform(ids, self.seed * 8 + 5)
        self.states = states

    def frame(
        self,
        power_mw: float,
        exposure_ms: float,
        gap_ms: float,
        light_in_gap: bool,
        survival: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Advance the dyes over the gap since the last frame and one exposure.

        Returns each dye's emission this frame relative to a continuously emitting dye at the
        reference power, divided by the sites per unit density: a unit density of dyes
        then gives, on average, the world's continuous-dye signal at ``REFERENCE_POWER_MW``.
        """
        light = replace(self.dye.rates(power_mw), k_bleach=0.0)
        dark = light if light_in_gap else replace(self.dye.rates(0.0), k_bleach=0.0)
        fresh = self.states < 0
        if fresh.any():
            self.states[fresh] = stationary_states(int(fresh.sum()), light, rng)
        if gap_ms > 0:
            self.states = jump(self.states, gap_ms, dark, rng)
        on_fraction, self.states = integrate_exposure(self.states, exposure_ms, light, rng)
        alive = self.threshold < survival
        norm = self.per_unit * self.dye.on_fraction(REFERENCE_POWER_MW)
        return self.brightness * on_fraction * alive / np.float32(norm)
