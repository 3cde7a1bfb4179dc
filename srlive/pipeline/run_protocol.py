"""`srlive acquire`: run an automated protocol on a microscope, unattended and safely.

A protocol is one more source of set plans for the one :class:`~srlive.pipeline.runner.Runner`
(engine → ring → store writer + inference worker, every set reconstructed off the
acquisition thread). Its store is a run store like a live run's: the root collection, one
series per stage position and channel (``p<position>_c<channel>``; a modality the optimizer
switched to gets ``_<modality>`` after it).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from srlive.acquisition.engine import DoseBudgetExceeded, SetPlan
from srlive.acquisition.modalities import get_modality
from srlive.acquisition.plan import build_plans, series_name
from srlive.acquisition.protocol import (
    ChannelPlan,
    Protocol,
    check_against_microscope,
    check_against_profile,
    load_protocol,
    protocol_summary,
)
from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.hardware.safety import interlock
from srlive.optimize.decision import Decision
from srlive.optimize.protocol_plans import OptimizedPlans, build_controls
from srlive.optimize.store import DECISIONS, METRICS, write_table
from srlive.pipeline.optimizer_driver import OptimizerDriver
from srlive.pipeline.runner import Route, Runner
from srlive.pipeline.stream import SRResult
from srlive.pipeline.summary import RunSummary
from srlive.profiles import Profile, load_profile
from srlive.recon.methods import get_method
from srlive.storage.guard import check_output

log = logging.getLogger(__name__)


def validate(
    protocol_path: str | Path, profile_name: str | Path | None
) -> tuple[Protocol, Profile]:
    """Load and check protocol and profile completely; nothing touches a device."""
    profile = load_profile(profile_name)
    protocol = load_protocol(protocol_path)
    check_against_profile(protocol, profile)  # each channel's method checked with its sets
    if protocol.srlive.optimizer.enabled and protocol.srlive.optimizer.allow_sim3:
        get_method("dl-sim3").check()  # sim3 needs its model: fail before acting
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
    on_result: Callable[[SRResult], None] | None = None,
    on_decision: Callable[[Decision], None] | None = None,
) -> RunSummary:
    """Run a protocol; returns its summary. Validates everything before acting.

    ``on_result`` receives every SR image (from the inference thread). With
    ``optimizer.enabled`` each SIM series' settings come from the optimizer's decision after
    the previous timepoint; ``on_decision`` receives every decision (from the optimizer's
    thread, and the initial and late ones from the acquisition thread).
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
            sequencing = (
                protocol.srlive.hardware_sequencing
                if hardware_sequencing is None
                else hardware_sequencing
            )
            return _run(
                scope, protocol, out, overwrite, sequencing, stop, on_result, on_decision
            )
    finally:
        scope.core.unloadAllDevices()


def _route(channels: list[ChannelPlan]) -> Route:
    """Series and reconstruction of a plan: its position and channel; a modality the
    optimizer switched to (sim9 <-> sim3) is a series of its own (another layout)."""
    by_config = {c.config: c for c in channels}

    def route(plan: SetPlan) -> tuple[str, str | None]:
        name = series_name(plan.position, plan.channel)
        channel = by_config.get(plan.channel)
        if channel is None or plan.modality.name == channel.modality.name:
            return name, channel.reconstruction if channel else plan.modality.reconstruction
        return f"{name}_{plan.modality.name}", plan.modality.reconstruction

    return route


def _run(
    scope: Microscope,
    protocol: Protocol,
    out: Path,
    overwrite: bool,
    sequencing: bool,
    stop: threading.Event,
    on_result: Callable[[SRResult], None] | None,
    on_decision: Callable[[Decision], None] | None,
) -> RunSummary:
    profile = scope.profile
    slm_shape = scope.slm_shape if scope.has_slm else None
    plans, channels = build_plans(protocol, profile, slm_shape)
    optimized = protocol.srlive.optimizer.enabled
    modalities = {c.modality for c in channels}
    if optimized and protocol.srlive.optimizer.allow_sim3:
        modalities |= {get_modality("sim9"), get_modality("sim3")}
    reconstructs = optimized or any(c.reconstruction for c in channels)
    run_info = {"protocol": protocol_summary(protocol), "started": _dt.datetime.now().isoformat()}
    runner = Runner(
        scope,
        out,
        _route(channels),
        max_frames=max(m.frames_per_set for m in modalities),
        run_info=run_info,
        overwrite=overwrite,
        policy="every",
        inference="process" if reconstructs else "thread",
        hardware_sequencing=sequencing,
        dose_budget_mj=protocol.srlive.dose_budget_mj,
        metrics_interval_s=0.0,
    )
    source: Any = plans
    finish = None
    if optimized:
        controls = build_controls(plans, channels, protocol, scope)
        source = OptimizedPlans(
            plans,
            controls,
            runner.engine,
            profile,
            slm_shape,
            decision_timeout_s=protocol.srlive.optimizer.decision_timeout_s,
            on_decision=on_decision,
        )
        runner.pipeline.metrics_for = source.advisor  # only optimized series are measured
        finish = partial(_write_tables, source, out)
        runner.drive(
            OptimizerDriver(
                source.advisor,
                source.receive,
                persist=finish,
                warm_up=tuple(c.advisor for c in controls.values()),
            )
        )
    if on_result is not None:
        runner.pipeline.events.result.connect(on_result)
    failed = threading.Event()

    def write_failed(message: str) -> None:  # stop lighting the sample at the next frame
        failed.set()
        stop.set()

    runner.pipeline.events.write_failed.connect(write_failed)
    error: str | None = None
    try:
        runner.run(source, stop)
    except DoseBudgetExceeded as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # a device, the camera or a store write failed: stop, say why
        error = runner.write_error or f"{type(exc).__name__}: {exc}"
    finally:  # the engine has switched the lasers off and blanked the SLM by now
        error = error or runner.write_error
        interrupted = error == "interrupted" or (stop.is_set() and not failed.is_set())
        runner.error = error
        runner.close(not interrupted, drain=error != "interrupted", finish=finish)
    return runner.summary(
        "protocol",
        sets_planned=len(plans),
        sequencing="hardware" if sequencing else "software",
        interrupted=interrupted,
        optimizer=source.summary() if optimized else None,
    )


def _write_tables(source: OptimizedPlans, out: Path) -> None:
    """Decisions and metrics of each optimized series into its store (once it exists)."""
    for control in source.controls.values():
        series = out / control.name
        if (series / "zarr.json").exists():
            write_table(series, DECISIONS, [d.to_record() for d in control.applied])
            write_table(series, METRICS, list(control.advisor.metrics))
