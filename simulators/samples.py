"""Fluorescent samples: built-in cell-like structures with live dynamics, or user densities.

Structures are kept as geometry (filament polylines, vesicle centres, tube centre lines,
network edges) and rendered to a fluorophore density on the simulation grid by splatting
closely spaced points. Dynamics move the geometry: filament tips grow and shrink, vesicles
diffuse, mitochondria wiggle, the whole field drifts slowly. Everything is seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from simulators.photophysics import render_points

SAMPLE_KINDS: tuple[str, ...] = (
    "microtubules",
    "vesicles",
    "mitochondria",
    "er",
    "beads",
    "line-pairs",
)
LINE_PAIR_SEPARATIONS_NM = (60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 250.0)
LABEL_SIGMA_NM = 10.0  # label size blur (antibody / tag extent)
RENDER_STEP_NM = 8.0  # spacing of splatted points along curves


def _polyline_points(vertices: np.ndarray, step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step_nm`` along a polyline; weights = arc length each point carries."""
    if len(vertices) < 2:
        return np.empty((0, 2), np.float32), np.empty(0, np.float32)
    seg = np.diff(vertices, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    if cum[-1] <= 0:
        return np.empty((0, 2), np.float32), np.empty(0, np.float32)
    s = np.arange(0.0, cum[-1], step_nm)
    y = np.interp(s, cum, vertices[:, 0])
    x = np.interp(s, cum, vertices[:, 1])
    return np.stack([y, x], 1).astype(np.float32), np.full(s.size, step_nm, np.float32)


def _worm(
    rng: np.random.Generator,
    start: np.ndarray,
    angle: float,
    length_nm: float,
    step_nm: float,
    persistence_nm: float,
) -> np.ndarray:
    """A worm-like-chain centre line (vertices, nm)."""
    n = max(2, int(length_nm / step_nm))
    turns = rng.normal(0.0, np.sqrt(step_nm / persistence_nm), n)
    angles = angle + np.cumsum(turns)
    steps = np.stack([np.sin(angles), np.cos(angles)], 1) * step_nm
    return np.vstack([start, start + np.cumsum(steps, 0)])


@dataclass
class Filament:
    """A microtubule: a worm-like chain whose plus end grows and shrinks."""

    vertices: np.ndarray
    heading: float
    growing: bool = True


@dataclass
class Sample:
    """A fluorophore density on the simulation grid, with optional live dynamics."""

    kind: str
    shape: tuple[int, ...]
    pixel_nm: float
    seed: int = 0
    motion: bool = True
    z_pixel_nm: float | None = None
    version: int = 0
    _static: np.ndarray | None = None
    _renderer: Callable[[Sample], np.ndarray] | None = None
    _stepper: Callable[[Sample, float], None] | None = None
    _cache: np.ndarray | None = None
    state: dict = field(default_factory=dict)
    drift_nm: np.ndarray = field(default_factory=lambda: np.zeros(2))

    @property
    def plane(self) -> tuple[int, int]:
        """(H, W) of a 2-D sample (what the built-in structures are drawn on)."""
        if len(self.shape) != 2:
            raise ValueError(f"a {len(self.shape)}-D sample has no single plane")
        return self.shape[0], self.shape[1]

    def density(self) -> np.ndarray:
        """Current ground truth (float32, ≥ 0)."""
        if self._static is not None:
            return self._static
        if self._renderer is None:
            raise RuntimeError(f"sample {self.kind!r} has neither a density nor a renderer")
        if self._cache is None:
            self._cache = self._renderer(self)
        return self._cache

    def advance(self, dt_s: float) -> None:
        """Move the sample forward in time by ``dt_s`` seconds (no-op without motion)."""
        if not self.motion or self._stepper is None or dt_s <= 0:
            return
        self._stepper(self, dt_s)
        self._cache = None
        self.version += 1

    def set_motion(self, on: bool) -> None:
        self.motion = bool(on) and self._stepper is not None

    @property
    def extent_nm(self) -> tuple[float, float]:
        return (self.shape[-2] * self.pixel_nm, self.shape[-1] * self.pixel_nm)

    def line_pair_layout(self) -> list[tuple[float, tuple[float, float], float]]:
        """(separation_nm, centre (y, x) nm, angle rad) of each line pair (line-pairs only)."""
        return list(self.state.get("layout", []))


# --- rendering helpers -------------------------------------------------------------------
def _render(sample: Sample, points: np.ndarray, weights: np.ndarray, sigma_nm: float) -> np.ndarray:
    shifted = points + sample.drift_nm[None, :].astype(np.float32)
    # weights are arc lengths (nm): a line of density ~1 per pixel it crosses
    density = render_points(shifted, weights / sample.pixel_nm, sample.plane, sample.pixel_nm)
    if sigma_nm > 0:
        density = ndimage.gaussian_filter(density, sigma_nm / sample.pixel_nm, mode="wrap")
    return density.astype(np.float32)


def _wrap(points: np.ndarray, extent: tuple[float, float]) -> np.ndarray:
    half = np.array(extent) / 2
    return (points + half) % (2 * half) - half


# --- microtubules ------------------------------------------------------------------------
def _make_microtubules(sample: Sample, rng: np.random.Generator) -> None:
    h, w = sample.extent_nm
    n = max(8, int(h * w / 1.2e7))  # ~1 filament per 12 µm²
    filaments = []
    for _ in range(n):
        start = rng.uniform([-h / 2, -w / 2], [h / 2, w / 2])
        heading = rng.uniform(0, 2 * np.pi)
        verts = _worm(rng, start, heading, rng.uniform(4000, 15000), 100.0, 8000.0)
        filaments.append(Filament(verts, heading, bool(rng.random() < 0.6)))
    sample.state["filaments"] = filaments
    sample.state["rng"] = rng


def _render_microtubules(sample: Sample) -> np.ndarray:
    pts, wts = [], []
    for f in sample.state["filaments"]:
        p, wt = _polyline_points(f.vertices, RENDER_STEP_NM)
        pts.append(_wrap(p, sample.extent_nm))
        wts.append(wt)
    return _render(sample, np.concatenate(pts), np.concatenate(wts), LABEL_SIGMA_NM)


def _step_microtubules(sample: Sample, dt: float) -> None:
    rng = sample.state["rng"]
    for f in sample.state["filaments"]:
        if rng.random() < dt * 0.2:  # catastrophe / rescue ~ every 5 s
            f.growing = not f.growing
        d = (250.0 if f.growing else -400.0) * dt  # nm: growth 0.25 µm/s, shrink 0.4 µm/s
        if d > 0:
            last = f.vertices[-1]
            seg = f.vertices[-1] - f.vertices[-2]
            heading = np.arctan2(seg[0], seg[1]) + rng.normal(0, np.sqrt(abs(d) / 8000.0))
            f.vertices = np.vstack(
                [f.vertices, last + d * np.array([np.sin(heading), np.cos(heading)])]
            )
        elif len(f.vertices) > 3:
            seg = np.hypot(*np.diff(f.vertices[-2:], axis=0)[0])
            if seg <= -d:
                f.vertices = f.vertices[:-1]
            else:
                frac = 1 + d / seg
                f.vertices[-1] = f.vertices[-2] + frac * (f.vertices[-1] - f.vertices[-2])
    sample.drift_nm += rng.normal(0, 3.0 * np.sqrt(dt), 2)


# --- vesicles ----------------------------------------------------------------------------
def _make_vesicles(sample: Sample, rng: np.random.Generator) -> None:
    h, w = sample.extent_nm
    n = max(20, int(h * w / 2.5e6))  # ~1 per 2.5 µm²
    sample.state.update(
        centres=rng.uniform([-h / 2, -w / 2], [h / 2, w / 2], (n, 2)),
        radii=rng.uniform(25, 75, n),
        brightness=rng.lognormal(0.0, 0.4, n),
        diffusion=rng.uniform(0.1e6, 1.0e6, n),  # nm²/s
        rng=rng,
    )


def _render_vesicles(sample: Sample) -> np.ndarray:
    st = sample.state
    centres = _wrap(st["centres"], sample.extent_nm) + sample.drift_nm
    density = np.zeros(sample.shape, np.float32)
    for lo, hi in ((25, 50), (50, 75)):  # two size classes: one blur each
        sel = (st["radii"] >= lo) & (st["radii"] < hi + 1e-9)
        area = np.pi * ((lo + hi) / 2) ** 2 / sample.pixel_nm**2
        pts = render_points(
            centres[sel], st["brightness"][sel] * area * 0.5, sample.plane, sample.pixel_nm
        )
        density += ndimage.gaussian_filter(pts, (lo + hi) / 4 / sample.pixel_nm, mode="wrap")
    return density


def _step_vesicles(sample: Sample, dt: float) -> None:
    st = sample.state
    sigma = np.sqrt(2 * st["diffusion"] * dt)
    st["centres"] = st["centres"] + st["rng"].normal(0, 1, st["centres"].shape) * sigma[:, None]
    sample.drift_nm += st["rng"].normal(0, 3.0 * np.sqrt(dt), 2)


# --- mitochondria ------------------------------------------------------------------------
def _make_mitochondria(sample: Sample, rng: np.random.Generator) -> None:
    h, w = sample.extent_nm
    n = max(6, int(h * w / 3e7))
    tubes = []
    for _ in range(n):
        start = rng.uniform([-h / 2, -w / 2], [h / 2, w / 2])
        tubes.append(
            (
                _worm(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(1000, 3000), 50.0, 2000.0),
                rng.uniform(125, 200),
            )
        )
    sample.state.update(tubes=tubes, rng=rng)


def _render_mitochondria(sample: Sample) -> np.ndarray:
    pts, wts = [], []
    for centre, radius in sample.state["tubes"]:
        p, wt = _polyline_points(centre, RENDER_STEP_NM)
        if len(p) < 2:
            continue
        tangent = np.gradient(p, axis=0)
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-9
        for offset, weight in (
            (radius, 1.0),
            (-radius, 1.0),
            (0.0, 0.35),
            (radius / 2, 0.35),
            (-radius / 2, 0.35),
        ):  # bright outer membrane, dim matrix
            pts.append(_wrap(p + offset * normal, sample.extent_nm))
            wts.append(wt * weight)
    return _render(sample, np.concatenate(pts), np.concatenate(wts), 20.0)


def _step_mitochondria(sample: Sample, dt: float) -> None:
    rng = sample.state["rng"]
    moved = []
    for centre, radius in sample.state["tubes"]:
        shift = rng.normal(0, 30.0 * np.sqrt(dt), 2)
        wiggle = rng.normal(0, 5.0 * np.sqrt(dt), centre.shape)
        moved.append((centre + shift + ndimage.gaussian_filter1d(wiggle, 5, axis=0), radius))
    sample.state["tubes"] = moved
    sample.drift_nm += rng.normal(0, 3.0 * np.sqrt(dt), 2)


# --- ER ----------------------------------------------------------------------------------
def _make_er(sample: Sample, rng: np.random.Generator) -> None:
    from scipy.spatial import Delaunay

    h, w = sample.extent_nm
    n = max(30, int(h * w / 1.5e6))
    nodes = rng.uniform([-h / 2, -w / 2], [h / 2, w / 2], (n, 2))
    tri = Delaunay(nodes)
    pairs = set()
    for simplex in tri.simplices:
        for a, b in ((0, 1), (1, 2), (0, 2)):
            pairs.add(tuple(sorted((simplex[a], simplex[b]))))
    edges = [e for e in sorted(pairs) if rng.random() < 0.55]
    sheets = [s for s in tri.simplices if rng.random() < 0.03]
    sample.state.update(nodes=nodes, edges=edges, sheets=sheets, rng=rng)


def _render_er(sample: Sample) -> np.ndarray:
    st = sample.state
    nodes = st["nodes"]
    pts, wts = [], []
    for a, b in st["edges"]:
        if np.hypot(*(nodes[a] - nodes[b])) > 4000:
            continue
        p, wt = _polyline_points(np.stack([nodes[a], nodes[b]]), RENDER_STEP_NM)
        pts.append(p)
        wts.append(wt * 0.8)
    for simplex in st["sheets"]:  # flat cisternae: a faint filled triangle
        corners = nodes[simplex]
        u = st["rng"].random((400, 2))
        flip = u.sum(1) > 1
        u[flip] = 1 - u[flip]
        fill = (
            corners[0] + u[:, :1] * (corners[1] - corners[0]) + u[:, 1:] * (corners[2] - corners[0])
        )
        (ay, ax), (by, bx) = corners[1] - corners[0], corners[2] - corners[0]
        area = 0.5 * abs(ay * bx - ax * by)
        pts.append(fill)
        wts.append(np.full(len(fill), 0.3 * area / len(fill) / sample.pixel_nm * 1.0))
    points = _wrap(np.concatenate(pts), sample.extent_nm)
    return _render(sample, points, np.concatenate(wts), LABEL_SIGMA_NM)


def _step_er(sample: Sample, dt: float) -> None:
    st = sample.state
    st["nodes"] = st["nodes"] + st["rng"].normal(0, 40.0 * np.sqrt(dt), st["nodes"].shape)
    sample.drift_nm += st["rng"].normal(0, 3.0 * np.sqrt(dt), 2)


# --- beads and line pairs (static test targets) ------------------------------------------
def _beads_density(sample: Sample, rng: np.random.Generator) -> np.ndarray:
    h, w = sample.extent_nm
    n = max(10, int(h * w / 4e6))
    centres = rng.uniform([-h / 2 + 500, -w / 2 + 500], [h / 2 - 500, w / 2 - 500], (n, 2))
    area = np.pi * 20.0**2 / sample.pixel_nm**2
    pts = render_points(centres, np.full(n, 4.0 * area), sample.plane, sample.pixel_nm)
    return ndimage.gaussian_filter(pts, 10.0 / sample.pixel_nm).astype(np.float32)


def _line_pairs_density(sample: Sample) -> np.ndarray:
    h, w = sample.extent_nm
    angles = (0.0, np.pi / 3, 2 * np.pi / 3)
    layout = []
    cols = len(LINE_PAIR_SEPARATIONS_NM)
    cell_w = w / cols
    cell_h = h / len(angles)
    pts, wts = [], []
    for r, angle in enumerate(angles):
        for c, sep in enumerate(LINE_PAIR_SEPARATIONS_NM):
            centre = np.array([-h / 2 + (r + 0.5) * cell_h, -w / 2 + (c + 0.5) * cell_w])
            length = 0.6 * min(cell_h, cell_w)
            direction = np.array([np.sin(angle), np.cos(angle)])
            normal = np.array([direction[1], -direction[0]])
            for side in (-0.5, 0.5):
                mid = centre + side * sep * normal
                p, wt = _polyline_points(
                    np.stack([mid - direction * length / 2, mid + direction * length / 2]),
                    RENDER_STEP_NM / 2,
                )
                pts.append(p)
                wts.append(wt)
            layout.append((sep, (float(centre[0]), float(centre[1])), angle))
    sample.state["layout"] = layout
    return _render(sample, np.concatenate(pts), np.concatenate(wts), 5.0)


_DYNAMIC = {
    "microtubules": (_make_microtubules, _render_microtubules, _step_microtubules),
    "vesicles": (_make_vesicles, _render_vesicles, _step_vesicles),
    "mitochondria": (_make_mitochondria, _render_mitochondria, _step_mitochondria),
    "er": (_make_er, _render_er, _step_er),
}


def make_sample(
    kind: str, shape: tuple[int, int], pixel_nm: float, seed: int = 0, motion: bool = True
) -> Sample:
    """A built-in structure on a grid of ``shape`` with ``pixel_nm`` pixels."""
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"unknown sample {kind!r} (choose from {', '.join(SAMPLE_KINDS)})")
    rng = np.random.default_rng(seed)
    sample = Sample(kind=kind, shape=tuple(shape), pixel_nm=pixel_nm, seed=seed, motion=motion)
    if kind in _DYNAMIC:
        make, render, step = _DYNAMIC[kind]
        make(sample, rng)
        sample._renderer, sample._stepper = render, step
    elif kind == "beads":
        sample._static = _beads_density(sample, rng)
        sample.motion = False
    else:
        sample._static = _line_pairs_density(sample)
        sample.motion = False
    return sample


def sample_from_array(
    arr: np.ndarray,
    pixel_nm: float,
    grid_shape: tuple[int, int],
    grid_pixel_nm: float,
    z_pixel_nm: float | None = None,
    source: str = "array",
) -> Sample:
    """A user ground truth (2D or 3D (Z, Y, X)) resampled to the grid and centred on it."""
    data = np.asarray(arr, dtype=np.float64)
    if data.ndim not in (2, 3):
        raise ValueError(f"{source}: a sample must be 2D or 3D (Z, Y, X), got {data.ndim}D")
    if not np.isfinite(data).all():
        raise ValueError(f"{source}: sample contains NaN or infinite values")
    if (data < 0).any():
        raise ValueError(f"{source}: sample density must be non-negative")
    factor = pixel_nm / grid_pixel_nm
    zoom = (1.0, factor, factor) if data.ndim == 3 else (factor, factor)
    if not np.isclose(factor, 1.0):
        data = ndimage.zoom(data, zoom, order=1, grid_mode=True, mode="grid-constant")
        data = np.clip(data, 0, None)
    out_shape = (*data.shape[:-2], *grid_shape)
    out = np.zeros(out_shape, np.float32)
    src_y0 = max(0, (data.shape[-2] - grid_shape[0]) // 2)
    src_x0 = max(0, (data.shape[-1] - grid_shape[1]) // 2)
    dst_y0 = max(0, (grid_shape[0] - data.shape[-2]) // 2)
    dst_x0 = max(0, (grid_shape[1] - data.shape[-1]) // 2)
    hh = min(grid_shape[0], data.shape[-2])
    ww = min(grid_shape[1], data.shape[-1])
    out[..., dst_y0 : dst_y0 + hh, dst_x0 : dst_x0 + ww] = data[
        ..., src_y0 : src_y0 + hh, src_x0 : src_x0 + ww
    ]
    peak = float(np.percentile(out[out > 0], 99.9)) if (out > 0).any() else 1.0
    out /= peak if peak > 0 else 1.0
    return Sample(
        kind="file",
        shape=out.shape,
        pixel_nm=grid_pixel_nm,
        motion=False,
        z_pixel_nm=z_pixel_nm,
        _static=out,
    )


def load_sample_file(
    path: str | Path,
    pixel_nm: float,
    grid_shape: tuple[int, int],
    grid_pixel_nm: float,
    z_pixel_nm: float | None = None,
) -> Sample:
    """Load a ``.npy`` or ``.tif`` density and place it on the grid (see sample_from_array)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".tif", ".tiff"):
        raise ValueError(f"{path}: unsupported sample file suffix {suffix!r} (use .npy or .tif)")
    if not path.exists():
        raise ValueError(f"{path}: sample file not found")
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            import tifffile

            data = tifffile.imread(path)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read sample: {exc}") from None
    return sample_from_array(
        np.squeeze(data), pixel_nm, grid_shape, grid_pixel_nm, z_pixel_nm, source=str(path)
    )
