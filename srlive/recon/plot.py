"""``srlive reconstruct --plot``: the fringes found in one raw set, for a person to check.

One panel per angle: the log power spectrum of that angle's raw frames (offset removed,
borders faded, mean removed, centred), the OTF cutoff 2NA/λ as a dashed circle, and the
carrier at ±k: a circle labelled with period and significance where it was found, a cross
where a fallback (nominal or previous estimate) was used instead. Drawn with matplotlib's
Agg canvas (no display needed) and written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srlive.recon.optics import SIMOptics
from srlive.recon.sim_params import SIMParameters, edge_taper, prepare_frames
from srlive.recon.tiff_output import atomic_write


def angle_spectrum(frames: np.ndarray, offset_adu: float) -> np.ndarray:
    """Mean log10 power spectrum (fftshifted) of one angle's frames ``(P, H, W)``."""
    prepared = prepare_frames(frames, offset_adu, edge_taper(frames.shape[-2:]), equalize=False)
    prepared = prepared - prepared.mean(axis=(1, 2), keepdims=True)
    power = np.mean(np.abs(np.fft.fft2(prepared)) ** 2, axis=0)
    return np.fft.fftshift(np.log10(power + 1e-6 * max(float(power.max()), 1e-30)))


def _extent(shape: tuple[int, int], pixel_nm: float) -> list[float]:
    """imshow extent in cycles/µm, rows (k_row) increasing downwards."""
    fy = np.fft.fftshift(np.fft.fftfreq(shape[0], pixel_nm / 1000.0))
    fx = np.fft.fftshift(np.fft.fftfreq(shape[1], pixel_nm / 1000.0))
    dy, dx = (fy[1] - fy[0]) if len(fy) > 1 else 1.0, (fx[1] - fx[0]) if len(fx) > 1 else 1.0
    return [fx[0] - dx / 2, fx[-1] + dx / 2, fy[-1] + dy / 2, fy[0] - dy / 2]


def _mark(ax, params: SIMParameters, a: int, entry: dict) -> str:
    """Mark angle ``a``'s carrier at ±k on ``ax``; return the panel's title line."""
    if entry["source"] == "none":
        return "not found (widefield only)"
    ky, kx = (1000.0 * v for v in params.k[a])  # cycles/µm
    found = entry["found"]
    sig = int(entry["significance"])  # −log10 of the chance noise alone made the peak
    label = f"{entry['period_nm']:.1f} nm, " + (f"p < 1e-{sig}" if sig >= 1 else "not significant")
    for sign in (1, -1):
        if found:
            ax.scatter([sign * kx], [sign * ky], s=160, facecolors="none", edgecolors="lime")
        else:
            ax.scatter([sign * kx], [sign * ky], s=120, marker="x", color="red")
    inward = -1 if kx > 0 else 1  # the label sits towards the centre, inside the panel
    ax.annotate(
        label,
        (kx, ky),
        xytext=(10 * inward, 8),
        textcoords="offset points",
        ha="right" if kx > 0 else "left",
        color="white",
        fontsize=8,
    )
    return label if found else f"not found: {entry['source']} used ({label})"


def plot_pattern(
    path: str | Path, raw_set: np.ndarray, params: SIMParameters, optics: SIMOptics
) -> Path:
    """Write the figure of one angle-major raw set ``(A·P, H, W)`` and its pattern to PNG."""
    from matplotlib.figure import Figure

    path = Path(path)
    n_a, n_p = params.n_angles, raw_set.shape[0] // params.n_angles
    shape = raw_set.shape[-2:]
    extent = _extent(shape, optics.pixel_nm)
    cutoff = 2 * optics.na / optics.emission_nm * 1000.0
    fig = Figure(figsize=(4.2 * n_a, 4.6), layout="constrained")
    axes = fig.subplots(1, n_a, squeeze=False)[0]
    for a, (ax, entry) in enumerate(zip(axes, params.report(), strict=True)):
        spectrum = angle_spectrum(raw_set[a * n_p : (a + 1) * n_p], optics.offset_adu)
        low, high = np.percentile(spectrum, [5, 99.9])
        ax.imshow(spectrum, extent=extent, cmap="magma", vmin=low, vmax=high, aspect="equal")
        ring = np.linspace(0, 2 * np.pi, 256)
        ax.plot(cutoff * np.cos(ring), cutoff * np.sin(ring), "--", color="cyan", lw=0.8)
        status = _mark(ax, params, a, entry)
        ax.set_title(f"angle {a}: {entry['angle_deg']:.1f}°\n{status}", fontsize=9)
        ax.set_xlabel("column frequency (cycles/µm)")
        ax.set_ylabel("row frequency (cycles/µm)")
    fig.suptitle(f"log power spectrum, OTF cutoff {cutoff:.2f} cycles/µm (dashed)", fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
