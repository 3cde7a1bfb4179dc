"""The main job: live acquisition of raw sets, reconstruction, display and OME-Zarr streaming."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.modalities import Modality, get_modality, slm_images
from srlive.acquisition.plan import repeated_sets
from srlive.acquisition.writer import AVAILABLE_RECONSTRUCTIONS, SeriesWriter
from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.profiles import Profile, load_profile
from srlive.safety import interlock

log = logging.getLogger(__name__)

UpdateCallback = Callable[[np.ndarray, np.ndarray | None, dict[str, Any]], None]


@dataclass
class RunSettings:
    """What `srlive run` was asked to do."""

    profile: str | None = None
    modality: str = "sim9"
    frames: int = 20
    exposure_ms: float | None = None
    power_mw: float | None = None
    line: int | None = None
    properties: list[tuple[str, str, str]] = field(default_factory=list)
    out: Path | None = None
    overwrite: bool = False


@dataclass
class RunSummary:
    """Machine-readable account of a run (printed by ``--json``)."""

    output: str
    modality: str
    raw_frames_acquired: int = 0
    raw_frames_stored: int = 0
    raw_frames_dropped: int = 0
    sr_images: int = 0
    raw_path: str = "raw/0"
    sr_path: str | None = "sr/0"
    raw_axes: list[str] = field(default_factory=lambda: ["t", "ap", "y", "x"])
    sr_axes: list[str] = field(default_factory=lambda: ["t", "y", "x"])
    sequencing: str = "hardware"
    interrupted: bool = False
    wall_s: float = 0.0
    raw_fps: float = 0.0
    recon_ms_median: float | None = None
    sim_parameters: dict[str, Any] | None = None
    lasers_on_at_end: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_output_path(modality: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{modality}.zarr"


def run_live(
    settings: RunSettings,
    *,
    on_update: UpdateCallback | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunSummary:
    """Acquire ``settings.frames`` sets, reconstruct, display and store them."""
    stop = stop or threading.Event()
    profile = load_profile(settings.profile)
    modality = get_modality(settings.modality)
    line = settings.line or profile.defaults.laser_line
    exposure = settings.exposure_ms or profile.defaults.exposure_ms
    power = settings.power_mw if settings.power_mw is not None else profile.defaults.power_mw
    profile.check_exposure(exposure)  # refuse before any device moves
    profile.check_power(line, power)
    out = Path(settings.out) if settings.out else default_output_path(modality.name)
    if modality.reconstruction and modality.reconstruction.startswith("dl-"):
        from srlive.learn.infer import resolve_weights

        resolve_weights(modality.reconstruction)  # missing weights: fail before acquiring
    if out.exists() and not settings.overwrite:
        raise FileExistsError(f"{out} exists (use --overwrite to replace it)")

    scope = connect(profile)
    try:
        with interlock(scope):
            for label, prop, value in settings.properties:
                scope.set_property(label, prop, value)
            return _acquire(
                scope,
                profile,
                modality,
                line,
                exposure,
                power,
                settings,
                out,
                on_update,
                stop,
                progress,
            )
    finally:
        scope.core.unloadAllDevices()


def _acquire(
    scope: Microscope,
    profile: Profile,
    modality: Modality,
    line: int,
    exposure: float,
    power: float,
    settings: RunSettings,
    out: Path,
    on_update: UpdateCallback | None,
    stop: threading.Event,
    progress: Callable[[int], None] | None,
) -> RunSummary:
    images = tuple(slm_images(profile, modality, line, scope.slm_shape)) if scope.has_slm else ()
    plans = repeated_sets(modality, line, power, exposure, images, settings.frames)
    engine = Engine(scope)
    summary = RunSummary(
        output=str(out),
        modality=modality.name,
        sequencing="hardware" if engine.uses_hardware_sequencing(plans[0]) else "software",
        sr_path="sr/0" if modality.reconstruction in AVAILABLE_RECONSTRUCTIONS else None,
    )

    def on_result(
        plan: SetPlan, frames: np.ndarray, sr: np.ndarray | None, info: dict[str, Any]
    ) -> None:
        if progress:
            progress(plan.t + 1)
        if on_update:
            on_update(
                frames.sum(axis=0, dtype=np.float32),
                sr,
                {
                    "t": plan.t + 1,
                    "of": settings.frames,
                    "frames": engine.stats.frames_acquired,
                    "dropped": engine.stats.frames_dropped,
                    "recon_ms": info.get("recon_ms"),
                    "status": f"{modality.name}, {summary.sequencing} sequencing",
                },
            )

    writer = SeriesWriter(
        profile,
        scope.frame_shape,
        scope.camera_offset_adu,
        {
            "modality": modality.name,
            "frames": settings.frames,
            "exposure_ms": exposure,
            "laser_line": line,
            "power_mw": power,
            "set_properties": settings.properties,
            "sequencing": summary.sequencing,
        },
        path_for=lambda _name: out,
        overwrite=settings.overwrite,
        on_result=on_result,
    )
    engine.events.set_complete.connect(
        lambda plan, frames, metas: writer.on_set(
            plan, frames, metas, "run", modality.reconstruction
        )
    )
    complete = False
    try:
        engine.run(plans, stop)
        complete = True
    except KeyboardInterrupt:
        log.warning("interrupted: lasers off, closing the store")
    finally:
        summary.lasers_on_at_end = [ln for ln in profile.laser_lines if scope.laser_is_on(ln)]
        writer.close(complete=True)
        summary.interrupted = not complete or stop.is_set()
        summary.raw_frames_acquired = engine.stats.frames_acquired
        summary.raw_frames_stored = writer.frames_stored
        summary.raw_frames_dropped = summary.raw_frames_acquired - summary.raw_frames_stored
        summary.sr_images = writer.sr_images
        summary.wall_s = time.perf_counter() - engine._t0
        summary.raw_fps = summary.raw_frames_acquired / summary.wall_s if summary.wall_s else 0.0
        times = writer.recon_times_ms()
        if times:
            summary.recon_ms_median = float(np.median(times))
            recon = writer.series["run"].recon
            if hasattr(recon, "sim"):
                summary.sim_parameters = _params_dict(recon.sim.params)
    return summary


def _params_dict(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    return {
        "period_nm": [round(float(v), 3) for v in np.atleast_1d(params.period_nm)],
        "angles_deg": [round(float(v), 3) for v in np.atleast_1d(params.angles_deg)],
        "modulation": [round(float(v), 3) for v in np.atleast_1d(params.modulation)],
    }
