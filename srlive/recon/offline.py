"""`srlive reconstruct`: run a reconstruction over a stored acquisition into a new store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srlive.profiles import Profile, load_profile
from srlive.storage.guard import check_output
from srlive.storage.omezarr import AcquisitionStore, StoreReader, open_store

OFFSET_ADU = 100.0  # camera offset the reconstructions subtract

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


def _picker(layout: tuple[int, int], kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """How to take the frames ``kind`` (a method or a model's task) needs from a stored set.

    ValueError when the store's sets cannot give them.
    """
    n_angles, n_phases = layout
    if kind in ("wiener-sim", "dl-sim9"):
        if layout != (3, 3):
            raise ValueError(f"{kind} needs 3x3 SIM sets; the store has {n_angles}x{n_phases}")
        return lambda frames: frames
    if kind == "dl-sim3":
        if layout == (3, 3):
            return lambda frames: frames[[0, 3, 6]]
        if layout == (3, 1):
            return lambda frames: frames
        raise ValueError(f"dl-sim3 needs sim3 or sim9 sets; the store has {n_angles}x{n_phases}")
    if kind in ("dl-denoise", "dl-wf2sr"):
        return lambda frames: frames.mean(axis=0, keepdims=True) if len(frames) > 1 else frames
    raise ValueError(f"unknown method {kind!r}")


@dataclass
class _Method:
    """A reconstruction resolved and checked against a store (before any output exists)."""

    upscale: int
    pick: Callable[[np.ndarray], np.ndarray]
    run: Callable[[np.ndarray], tuple[np.ndarray, float]]

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, float]:
        """The SR image and its confidence (NaN if none) of one stored (A, P, H, W) set."""
        return self.run(self.pick(raw.reshape(-1, *raw.shape[-2:])))


def _resolve(method: str, reader: StoreReader) -> _Method:
    """``wiener-sim``, a shipped model name or a .safetensors path, fitted to ``reader``.

    Raises (ValueError, FileNotFoundError) for an unknown method, missing or invalid weights,
    or sets the method cannot take.
    """
    attrs = reader.attrs
    h, w = attrs["frame_shape"]
    layout = (reader.n_angles, reader.n_phases)
    profile, line = _stored_profile(attrs)
    if method == "wiener-sim":
        from srlive.recon.wiener_sim import WienerSIM

        optics = profile.optics
        sim = WienerSIM(
            (h, w), reader.pixel_nm, optics.na, optics.emission_for(line), offset_adu=OFFSET_ADU
        )

        def wiener(frames: np.ndarray) -> tuple[np.ndarray, float]:
            if sim.params is None:
                sim.calibrate(frames)
            return sim.reconstruct(frames), float("nan")

        return _Method(2, _picker(layout, method), wiener)
    from srlive.learn.infer import Geometry, learned

    model = learned(method, "auto", OFFSET_ADU, Geometry.from_profile(profile, line))

    def infer(frames: np.ndarray) -> tuple[np.ndarray, float]:
        result = model(frames)
        return result.image, result.confidence

    return _Method(model.upscale, _picker(layout, model.task.name), infer)


def _stored_profile(attrs: dict[str, Any]) -> tuple[Profile, int]:
    """The profile and laser line an acquisition was made with (default profile if absent)."""
    stored = attrs.get("profile")
    profile = Profile.model_validate(stored) if stored else load_profile(None)
    line = attrs.get("run", {}).get("laser_line") or profile.defaults.laser_line
    return profile, int(line)


def reconstruct_store(
    store: str | Path, method: str, out: str | Path, overwrite: bool = False
) -> dict[str, Any]:
    """Copy the raw data of ``store`` to ``out`` with ``method``'s SR image for every set.

    The method is resolved and the first SR image computed before ``out`` is created, so a
    bad method, weights file or input leaves ``out`` as it was; a failure before the first
    SR image is stored removes the new output again.
    """
    check_output(out, overwrite=overwrite, inputs=[store])  # fail fast; claimed at create
    reader = open_store(store)
    recon = _resolve(method, reader)
    if reader.n_sets == 0:
        raise ValueError(f"{store} holds no complete set to reconstruct")
    attrs = reader.attrs
    h, w = attrs["frame_shape"]
    layout = (reader.n_angles, reader.n_phases)
    per_set = layout[0] * layout[1]
    table = reader.frames

    def one_set(t: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        raw = reader.read_set(t)
        rows = [{k: v[t * per_set + i].item() for k, v in table.items()} for i in range(per_set)]
        return raw, rows

    raw, rows = one_set(0)
    first = recon(raw)  # fails here, before any output exists, if it cannot be made
    extra = [c for c in table if c not in STANDARD_COLUMNS and not c.startswith("power_mw_")]
    upscale = recon.upscale
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
    stored = 0
    try:
        with writer:
            for t in range(reader.n_sets):
                if t:
                    raw, rows = one_set(t)
                writer.write_set(t, raw, rows)
                image, confidence = first if t == 0 else recon(raw)
                meta = {"t": t, "time_s": rows[-1].get("time_s", 0.0), "confidence": confidence}
                writer.write_sr(t, image, meta)
                stored += 1
    except BaseException:
        if not stored:  # nothing of use was written: leave no output behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return {
        "input": str(store),
        "output": str(out),
        "method": method,
        "sets": reader.n_sets,
        "sr_images": reader.n_sets,
        "sr_path": "sr/0",
    }
