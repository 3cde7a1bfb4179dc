"""`srlive reconstruct`: run a reconstruction over a stored acquisition into a new store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.storage.omezarr import AcquisitionStore, open_store

STANDARD_COLUMNS = {
    "frame",
    "t",
    "a",
    "p",
    "time_s",
    "exposure_ms",
    "slm_pattern",
    "z_um",
    "x_um",
    "y_um",
    "event",
}


def _select(frames: np.ndarray, layout: tuple[int, int], method: str) -> np.ndarray:
    """The frames of a stored set that ``method`` takes."""
    n_angles, n_phases = layout
    if method in ("wiener-sim", "dl-sim9"):
        if layout != (3, 3):
            raise ValueError(f"{method} needs 3x3 SIM sets; the store has {n_angles}x{n_phases}")
        return frames
    if method == "dl-sim3":
        if layout == (3, 3):
            return frames[[0, 3, 6]]
        if layout == (3, 1):
            return frames
        raise ValueError(f"dl-sim3 needs sim3 or sim9 sets; the store has {n_angles}x{n_phases}")
    if method in ("dl-denoise", "dl-wf2sr"):
        return frames.mean(axis=0, keepdims=True) if len(frames) > 1 else frames
    raise ValueError(f"unknown method {method!r}")


def _stored_profile(attrs: dict[str, Any]) -> tuple[Profile, int]:
    """The profile and laser line an acquisition was made with (default profile if absent)."""
    stored = attrs.get("profile")
    profile = Profile.model_validate(stored) if stored else load_profile(None)
    line = attrs.get("run", {}).get("laser_line") or profile.defaults.laser_line
    return profile, int(line)


def reconstruct_store(
    store: str | Path, method: str, out: str | Path, overwrite: bool = False
) -> dict[str, Any]:
    """Copy the raw data of ``store`` to ``out`` with ``method``'s SR image for every set."""
    reader = open_store(store)
    layout = (reader.n_angles, reader.n_phases)
    attrs = reader.attrs
    h, w = attrs["frame_shape"]
    offset = 100.0
    confidence = None
    profile, line = _stored_profile(attrs)
    if method == "wiener-sim":
        from srlive.recon.wiener_sim import WienerSIM

        optics = profile.optics
        sim = WienerSIM(
            (h, w), reader.pixel_nm, optics.na, optics.emission_for(line), offset_adu=offset
        )
        upscale = 2
    else:
        from srlive.learn.infer import Geometry, learned

        model = learned(method, "auto", offset, Geometry.from_profile(profile, line))
        upscale = model.upscale
    table = reader.frames
    extra = [c for c in table if c not in STANDARD_COLUMNS and not c.startswith("power_mw_")]
    writer = AcquisitionStore.create(
        out,
        frame_shape=(h, w),
        pixel_nm=reader.pixel_nm,
        n_angles=layout[0],
        n_phases=layout[1],
        sr_shape=(upscale * h, upscale * w),
        sr_pixel_nm=reader.pixel_nm / upscale,
        laser_lines=attrs.get("laser_lines", []),
        profile=attrs.get("profile", {}),
        run={**attrs.get("run", {}), "reconstructed_from": str(store), "method": method},
        sr_method=method,
        overwrite=overwrite,
        inputs=[store],  # never written over (or into) the store it reads
        extra_frame_columns=extra,
    )
    per_set = layout[0] * layout[1]
    with writer:
        for t in range(reader.n_sets):
            raw = reader.read_set(t)
            rows = [
                {k: v[t * per_set + i].item() for k, v in table.items()} for i in range(per_set)
            ]
            writer.write_set(t, raw, rows)
            frames = _select(raw.reshape(-1, h, w), layout, method)
            if method == "wiener-sim":
                if sim.params is None:
                    sim.calibrate(frames)
                image = sim.reconstruct(frames)
            else:
                result = model(frames)
                image, confidence = result.image, result.confidence
            writer.write_sr(
                t,
                image,
                {
                    "t": t,
                    "time_s": rows[-1].get("time_s", 0.0),
                    "confidence": confidence if confidence is not None else float("nan"),
                },
            )
    return {
        "input": str(store),
        "output": str(out),
        "method": method,
        "sets": reader.n_sets,
        "sr_images": reader.n_sets,
        "sr_path": "sr/0",
    }
