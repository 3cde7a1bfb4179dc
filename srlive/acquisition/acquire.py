"""`srlive acquire`: run an automated protocol on a microscope, unattended and safely."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive import __version__
from srlive.acquisition.engine import DoseBudgetExceeded, Engine, SetPlan
from srlive.acquisition.plan import build_plans, series_name
from srlive.acquisition.protocol import (
    Protocol,
    ProtocolError,
    check_against_microscope,
    check_against_profile,
    load_protocol,
    protocol_summary,
)
from srlive.acquisition.writer import AVAILABLE_RECONSTRUCTIONS, SeriesWriter, create_root_group
from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.profiles import Profile, load_profile
from srlive.safety import interlock
from srlive.storage.guard import check_output

log = logging.getLogger(__name__)


def validate(
    protocol_path: str | Path, profile_name: str | Path | None
) -> tuple[Protocol, Profile]:
    """Load and check protocol and profile completely; nothing touches a device."""
    profile = load_profile(profile_name)
    protocol = load_protocol(protocol_path)
    check_against_profile(protocol, profile)
    for config, settings in protocol.srlive.channels.items():
        recon = settings.reconstruction
        if recon not in (None, "none", *AVAILABLE_RECONSTRUCTIONS):
            available = ", ".join(("none", *AVAILABLE_RECONSTRUCTIONS))
            raise ProtocolError(
                f"{protocol.source}: channel {config!r}: reconstruction {recon!r} is not "
                f"available in this version (available: {available})"
            )
    if protocol.srlive.optimizer.enabled and protocol.srlive.optimizer.allow_sim3:
        from srlive.learn.infer import resolve_weights

        resolve_weights("dl-sim3")  # sim3 needs its model: fail before acting
    return protocol, profile


def acquire(
    protocol_path: str | Path,
    *,
    profile: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    hardware_sequencing: bool | None = None,
    properties: list[tuple[str, str, str]] | None = None,
    stop: threading.Event | None = None,
    on_result: Callable[[SetPlan, np.ndarray, np.ndarray | None, dict[str, Any]], None]
    | None = None,
    on_decision: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run a protocol; returns a JSON-ready summary. Validates everything before acting.

    With ``optimizer.enabled`` each SIM series' settings come from the optimizer's decision
    after the previous timepoint; ``on_decision`` receives every decision (a JSON-ready dict,
    called from the optimizer's worker thread).
    """
    stop = stop or threading.Event()
    protocol, prof = validate(protocol_path, profile)
    out = (
        Path(out)
        if out
        else Path("runs")
        / (_dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{Path(protocol_path).stem}.zarr")
    )
    check_output(out, overwrite=overwrite)  # refused before any device is touched
    scope = connect(prof)
    try:
        with interlock(scope):
            for label, prop, value in properties or []:
                scope.set_property(label, prop, value)
            # the devices' limits may be stricter; sets must fit in memory at this frame size
            check_against_microscope(protocol, scope)
            return _run(
                scope,
                scope.profile,
                protocol,
                out,
                overwrite,
                hardware_sequencing,
                stop,
                on_result,
                on_decision,
            )
    finally:
        scope.core.unloadAllDevices()


def _run(
    scope: Microscope,
    profile: Profile,
    protocol: Protocol,
    out: Path,
    overwrite: bool,
    hardware_sequencing: bool | None,
    stop: threading.Event,
    on_result,
    on_decision=None,
) -> dict[str, Any]:
    slm_shape = scope.slm_shape if scope.has_slm else None
    plans, channels = build_plans(protocol, profile, slm_shape)
    recon_by_channel = {c.config: c.reconstruction for c in channels}
    sequencing = (
        protocol.srlive.hardware_sequencing
        if hardware_sequencing is None
        else (hardware_sequencing)
    )
    engine = Engine(
        scope, hardware_sequencing=sequencing, dose_budget_mj=protocol.srlive.dose_budget_mj
    )
    run_info = {"protocol": protocol_summary(protocol), "started": _dt.datetime.now().isoformat()}
    claim = create_root_group(
        out,
        {
            "software": f"srlive {__version__}",
            "layout": "series",
            "series": [],
            "complete": False,
            **run_info,
        },
        overwrite,
    )
    modality_by_channel = {c.config: c.modality.name for c in channels}
    controls = {}
    source: Any = plans
    if protocol.srlive.optimizer.enabled:
        from srlive.optimize.control import OptimizedPlans, build_controls

        controls = build_controls(plans, channels, protocol, scope, on_decision=on_decision)
        for control in controls.values():
            control.worker.persist = partial(_write_tables, control, out)
        source = OptimizedPlans(
            plans,
            controls,
            engine,
            profile,
            slm_shape,
            decision_timeout_s=protocol.srlive.optimizer.decision_timeout_s,
            on_decision=on_decision,
        )

    def result(plan: SetPlan, frames: np.ndarray, sr: np.ndarray | None, info: dict) -> None:
        control = controls.get((plan.position, plan.channel))
        if control is not None:
            control.worker.add_sr(plan.t, sr, info.get("confidence"))
        if on_result:
            on_result(plan, frames, sr, info)

    writer = SeriesWriter(
        profile,
        scope.frame_shape,
        scope.camera_noise,
        run_info,
        path_for=lambda name: out / name,
        overwrite=overwrite,
        on_result=result,
    )

    def on_set(plan: SetPlan, frames: np.ndarray, metas: list[dict[str, Any]]) -> None:
        name = series_name(plan.position, plan.channel)
        recon = recon_by_channel.get(plan.channel)
        if plan.modality.name != modality_by_channel.get(plan.channel, plan.modality.name):
            # the optimizer switched modality (sim9 <-> sim3): its own series and layout
            name = f"{name}_{plan.modality.name}"
            recon = plan.modality.reconstruction
        writer.on_set(plan, frames, metas, name, recon)

    engine.events.set_complete.connect(on_set)
    error: str | None = None
    try:
        engine.run(source, stop)
    except DoseBudgetExceeded as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # a device, the camera or a store write failed: stop, say why
        error = writer.failed or f"{type(exc).__name__}: {exc}"
    finally:  # the engine has switched the lasers off and blanked the SLM by now
        lasers_on = [ln for ln in profile.laser_lines if scope.laser_is_on(ln)]
        complete = error is None and not stop.is_set()
        try:
            writer.close(complete=complete)
        except Exception as exc:
            error = error or f"{type(exc).__name__}: {exc}"
        complete = complete and error is None
        optimizer_summary = _finish_root(controls, writer, out, engine, complete)
        claim.release()
    stats = engine.stats
    return {
        "output": str(out),
        "sets_planned": len(plans),
        "sets_completed": stats.sets_completed,
        "raw_frames_acquired": stats.frames_acquired,
        "raw_frames_stored": writer.frames_stored,
        "raw_frames_dropped": stats.frames_acquired - writer.frames_stored,
        "sr_images": writer.sr_images,
        "series": {
            name: {
                "sets": s.sets,
                "frames": s.frames,
                "sr_images": s.sr_images,
                "raw_path": f"{name}/raw/0",
                "sr_path": f"{name}/sr/0" if s.recon else None,
            }
            for name, s in sorted(writer.series.items())
        },
        "hardware_sequencing": sequencing,
        "dose_mj": {str(k): round(v, 4) for k, v in stats.dose_mj.items()},
        "stopped_by": stats.stopped_by,
        "error": error,
        "interrupted": error == "interrupted" or stop.is_set(),
        "complete": complete,
        "lasers_on_at_end": lasers_on,
        "optimizer": optimizer_summary,
    }


def _finish_root(
    controls: dict, writer: SeriesWriter, out: Path, engine: Engine, complete: bool
) -> dict[str, Any] | None:
    """Decisions into the series' tables and the final state into the root (best effort:
    a full disk leaves the root saying ``complete: false``, as it did from the start)."""
    optimizer_summary = None
    try:
        optimizer_summary = _store_decisions(controls, writer, out)
        root = zarr.open_group(str(out), mode="r+")
        root.attrs["srlive"] = {
            **root.attrs["srlive"],
            "series": sorted(writer.series),
            "complete": complete,
            "stopped_by": engine.stats.stopped_by,
        }
    except OSError as exc:
        log.error("%s: final state not written: %s", out, exc)
    return optimizer_summary


def _write_tables(control: Any, out: Path) -> None:
    """Decisions and metrics of one optimized series into its store (once it exists)."""
    from srlive.optimize.store import DECISIONS, METRICS, write_table

    series = out / control.worker.name
    if (series / "zarr.json").exists():
        write_table(series, DECISIONS, list(control.applied))
        write_table(series, METRICS, list(control.worker.metrics))


def _store_decisions(controls: dict, writer: SeriesWriter, out: Path) -> dict[str, Any] | None:
    """Stop the optimizer workers; store decisions and metrics in each series' tables."""
    if not controls:
        return None
    from srlive.optimize.store import DECISIONS

    summary: dict[str, Any] = {}
    for control in controls.values():
        control.worker.close()
        name = control.worker.name
        if name not in writer.series:
            continue
        _write_tables(control, out)
        late = sum(bool(d.get("late")) for d in control.applied)
        times = [d["decision_ms"] for d in control.applied if "decision_ms" in d]
        summary[name] = {
            "decisions": len(control.applied),
            "late": late,
            "errors": control.worker.errors,
            "decision_ms_max": round(max(times), 1) if times else None,
            "table": f"{name}/tables/{DECISIONS}",
        }
    return summary
