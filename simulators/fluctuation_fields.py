"""Prior-free emitter layouts for fluctuation imaging: shapes no biological sample prescribes.

A network trained only on filaments and vesicles can learn what cells look like instead of
what the data say. These generators place dyes on random geometry with no typical scale:

* ``segments``: short curved arcs of random length (0.1-2 µm), curvature and labelling density;
* ``points``: isolated dyes and small clusters (1-12 dyes within ~20 nm) at random places;
* ``rings``: circles of random radius (40-700 nm), some filled, some with a gap;
* ``stars``: 3-12 straight spokes from a centre, of random length (0.15-1.5 µm);
* ``spirals``: Archimedean spiral arcs of random pitch (held out from training).

Positions are nm (y, x) with the origin at the field centre, as in
:mod:`simulators.fluctuation`; each dye has a lognormal relative brightness (mean 1).
Densities scale with the field's area; a ``density`` factor scales all counts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulators.fluctuation import Emitters

PRIOR_FREE_KINDS = ("segments", "points", "rings", "stars", "spirals")
LABEL_SIGMA_NM = 5.0  # label size: dyes sit this far (rms) off the drawn geometry


def _count(rng: np.random.Generator, per_um2: float, field_nm: tuple[float, float]) -> int:
    area_um2 = field_nm[0] * field_nm[1] / 1e6
    return int(rng.poisson(max(per_um2 * area_um2, 0.0)))


def _centre(rng: np.random.Generator, field_nm: tuple[float, float]) -> np.ndarray:
    return rng.uniform(-0.5, 0.5, 2) * np.asarray(field_nm)


def _along(points: np.ndarray, density_per_um: float, rng: np.random.Generator) -> np.ndarray:
    """Dyes placed uniformly (Poisson count) along a polyline of (K, 2) nm points."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    length = float(steps.sum())
    n = int(rng.poisson(density_per_um * length / 1000.0))
    if n == 0 or length == 0:
        return np.empty((0, 2))
    s = rng.uniform(0, length, n)
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    y = np.interp(s, cumulative, points[:, 0])
    x = np.interp(s, cumulative, points[:, 1])
    return np.stack([y, x], axis=1) + rng.normal(0, LABEL_SIGMA_NM, (n, 2))


def _arc(start: np.ndarray, heading: float, length: float, curvature: float) -> np.ndarray:
    s = np.linspace(0, length, max(8, int(length / 10)))
    theta = heading + curvature * s
    step = np.stack([np.sin(theta), np.cos(theta)], axis=1) * np.gradient(s)[:, None]
    return start + np.cumsum(step, axis=0)


def segments(rng: np.random.Generator, field_nm: tuple[float, float], density: float) -> list:
    parts = []
    for _ in range(_count(rng, rng.uniform(0.1, 0.8) * density, field_nm)):
        length = float(np.exp(rng.uniform(np.log(100), np.log(2000))))
        curvature = rng.uniform(-1, 1) / rng.uniform(150, 3000)
        path = _arc(_centre(rng, field_nm), rng.uniform(0, 2 * np.pi), length, curvature)
        parts.append(_along(path, rng.uniform(15, 100), rng))
    return parts


def points(rng: np.random.Generator, field_nm: tuple[float, float], density: float) -> list:
    parts = []
    for _ in range(_count(rng, rng.uniform(0.3, 3.0) * density, field_nm)):
        n = 1 + int(rng.poisson(rng.uniform(0, 6)))
        spread = rng.uniform(0, 20)
        parts.append(_centre(rng, field_nm) + rng.normal(0, spread + 1e-3, (n, 2)))
    return parts


def rings(rng: np.random.Generator, field_nm: tuple[float, float], density: float) -> list:
    parts = []
    for _ in range(_count(rng, rng.uniform(0.05, 0.5) * density, field_nm)):
        radius = float(np.exp(rng.uniform(np.log(40), np.log(700))))
        centre = _centre(rng, field_nm)
        if rng.random() < 0.2:  # a filled disc
            n = int(rng.poisson(rng.uniform(200, 2000) * np.pi * (radius / 1000) ** 2))
            r = radius * np.sqrt(rng.random(n))
            a = rng.uniform(0, 2 * np.pi, n)
            parts.append(centre + np.stack([r * np.sin(a), r * np.cos(a)], axis=1))
            continue
        gap = rng.uniform(0, np.pi) if rng.random() < 0.3 else 0.0
        a = np.linspace(gap, 2 * np.pi, max(16, int(radius / 5)))
        path = centre + radius * np.stack([np.sin(a), np.cos(a)], axis=1)
        parts.append(_along(path, rng.uniform(15, 100), rng))
    return parts


def stars(rng: np.random.Generator, field_nm: tuple[float, float], density: float) -> list:
    parts = []
    for _ in range(_count(rng, rng.uniform(0.03, 0.2) * density, field_nm)):
        centre = _centre(rng, field_nm)
        n_spokes = int(rng.integers(3, 13))
        length = float(np.exp(rng.uniform(np.log(150), np.log(1500))))
        offset, per_um = rng.uniform(0, 2 * np.pi), rng.uniform(15, 100)
        for k in range(n_spokes):
            a = offset + 2 * np.pi * k / n_spokes
            end = centre + length * np.array([np.sin(a), np.cos(a)])
            parts.append(_along(np.stack([centre, end]), per_um, rng))
    return parts


def spirals(rng: np.random.Generator, field_nm: tuple[float, float], density: float) -> list:
    parts = []
    for _ in range(_count(rng, rng.uniform(0.03, 0.15) * density, field_nm)):
        pitch = rng.uniform(100, 400)  # nm between turns
        turns = rng.uniform(1, 3)
        a = np.linspace(0, 2 * np.pi * turns, 400)
        r = pitch * a / (2 * np.pi) + rng.uniform(0, 100)
        spin = rng.choice([-1, 1]) * a + rng.uniform(0, 2 * np.pi)
        path = _centre(rng, field_nm) + np.stack([r * np.sin(spin), r * np.cos(spin)], axis=1)
        parts.append(_along(path, rng.uniform(15, 100), rng))
    return parts


GENERATORS: dict[str, Callable[..., list]] = {
    "segments": segments,
    "points": points,
    "rings": rings,
    "stars": stars,
    "spirals": spirals,
}


def prior_free_emitters(
    kinds: tuple[str, ...] | str,
    field_nm: tuple[float, float],
    seed: int,
    density: float = 1.0,
    brightness_sigma: float = 0.3,
) -> Emitters:
    """Emitters from one or several generators overlaid on one field (dyes outside dropped)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [k for k in kinds if k not in GENERATORS]
    if unknown or not kinds:
        raise ValueError(f"unknown prior-free kinds {unknown} (choose from {PRIOR_FREE_KINDS})")
    if min(field_nm) <= 0 or density < 0:
        raise ValueError(f"need a positive field and density >= 0, got {field_nm}, {density}")
    rng = np.random.default_rng(seed)
    parts = [np.empty((0, 2))]
    for kind in kinds:
        parts += GENERATORS[kind](rng, field_nm, density)
    positions = np.concatenate(parts)
    half = np.asarray(field_nm) / 2
    positions = positions[(np.abs(positions) < half).all(axis=1)].astype(np.float32)
    n = len(positions)
    brightness = rng.lognormal(-0.5 * brightness_sigma**2, brightness_sigma, n).astype(np.float32)
    return Emitters(positions, brightness, (float(field_nm[0]), float(field_nm[1])))
