"""The main job: live acquisition of raw sets, reconstruction, display and OME-Zarr streaming."""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srlive.acquisition.modalities import get_modality
from srlive.acquisition.settings import Illumination, resolve_illumination
from srlive.errors import SafetyError
from srlive.hardware.connect import connect
from srlive.hardware.microscope import Microscope
from srlive.hardware.safety import interlock
from srlive.optimize.advisors import SessionAdvisor
from srlive.optimize.density import DensityTarget
from srlive.optimize.optimizer import DEFAULT_TARGET_QUALITY
from srlive.pipeline.density_driver import DensityDriver
from srlive.pipeline.session import LiveSession, LiveSettings
from srlive.pipeline.store_writer import StoredSet
from srlive.pipeline.stream import SRResult
from srlive.pipeline.summary import RunSummary, smlm_status
from srlive.profiles import Profile, load_profile
from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.recon.methods import get_method
from srlive.recon.streaming import FluctuationReconstructor, SIMReconstructor
from srlive.storage.guard import check_output

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
    optimize: bool = False  # the learned optimizer drives power and exposure from the start
    goal: str = "min-dose-at-quality"
    target_quality: float | None = None
    reconstruction: str | None = None  # the modality's method otherwise
    fluctuation: FluctuationSettings | None = None  # fluctuation: window, step, parameters
    smlm: Any = None  # smlm: localisation settings (srlive.recon.smlm.method.SMLMSettings)
    set_frames: int | None = None  # smlm: frames per set (None: the modality's 500)
    activation_mw: float | None = None  # smlm: the activation line's power (None: 0 mW)
    target_density: float | None = None  # smlm: localisations per frame per µm² to hold

    def method(self) -> str | None:
        """The reconstruction the run's modality gets."""
        return self.reconstruction or get_modality(self.modality).reconstruction


def default_output_path(modality: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{modality}.zarr"


def run_live(
    settings: RunSettings,
    *,
    on_update: UpdateCallback | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    attach: Callable[[LiveSession], None] | None = None,
    stay_open: bool = False,
    session_options: dict[str, Any] | None = None,
) -> RunSummary:
    """Acquire ``settings.frames`` sets through a :class:`LiveSession`, store and show them.

    ``stop`` (Ctrl-C, SIGTERM, window closed) ends acquisition at the next frame.
    ``attach(session)`` connects a viewer before the run starts; with ``stay_open`` the
    session stays usable (Start/Snap/settings from the viewer) until ``stop`` is set.
    """
    stop = stop or threading.Event()
    profile = load_profile(settings.profile)
    modality = get_modality(settings.modality)
    light = _illumination(settings, profile)  # refused before any device moves
    _activation(settings, profile, modality.name, light.line)
    out = Path(settings.out) if settings.out else default_output_path(modality.name)
    method = settings.method()
    if method is not None:  # it takes the modality's sets, its weights are here
        recon = get_method(method)
        recon.picker((modality.n_angles, modality.n_phases), modality.structured)
        recon.check()
    check_output(out, overwrite=settings.overwrite)  # refused before any device moves

    scope = connect(profile)
    try:
        with interlock(scope):
            light = _illumination(settings, scope.profile)  # the devices' limits may be stricter
            if modality.name == "fluctuation":
                _blinking_sample(scope, settings.properties)
            for label, prop, value in settings.properties:
                scope.set_property(label, prop, value)
            power = {
                ln: (light.power_mw if ln == light.line else 0.0) for ln in profile.laser_lines
            }
            power.update(_activation(settings, scope.profile, modality.name, light.line))
            live = LiveSettings(modality.name, light.line, light.exposure_ms, power)
            return _acquire(
                scope,
                live,
                settings,
                out,
                on_update=on_update,
                stop=stop,
                progress=progress,
                attach=attach,
                stay_open=stay_open,
                session_options=session_options or {},
            )
    finally:
        scope.core.unloadAllDevices()


def _activation(
    settings: RunSettings, profile: Profile, modality: str, line: int
) -> dict[int, float]:
    """An SMLM run's activation line and its starting power (checked against the limits)."""
    activation = profile.smlm.activation_line
    given = settings.activation_mw is not None or settings.target_density is not None
    if modality != "smlm" or activation is None or activation == line:
        if given and modality == "smlm":
            raise SafetyError(
                f"profile {profile.name!r} has no activation line besides {line} nm "
                "(smlm.activation_line)"
            )
        return {}
    power = settings.activation_mw or 0.0
    profile.check_power(activation, power)
    return {activation: power}


def _blinking_sample(scope: Microscope, given: list[tuple[str, str, str]]) -> None:
    """A simulated sample gets blinking dyes for a fluctuation run (a real sample blinks
    on its own); ``--set HUB.Fluctuation=Off`` keeps them steady."""
    hub = scope.profile.roles.simulator_hub
    if hub is None or any(label == hub and prop == "Fluctuation" for label, prop, _ in given):
        return
    if scope.core.hasProperty(hub, "Fluctuation"):
        scope.set_property(hub, "Fluctuation", "On")


def _illumination(settings: RunSettings, profile: Profile) -> Illumination:
    """The run's line, power and exposure: given ones checked, the defaults for the rest
    (an SMLM run's: the profile's ``smlm.line`` and ``smlm.power_mw`` where it has them)."""
    line, power = settings.line, settings.power_mw
    if settings.modality == "smlm" and profile.smlm.line is not None:
        line = profile.smlm.line if line is None else line
        if power is None and line == profile.smlm.line:
            power = profile.smlm.power_mw
    return resolve_illumination(
        profile, line=line, power_mw=power, exposure_ms=settings.exposure_ms
    )


def _acquire(
    scope: Microscope,
    live: LiveSettings,
    settings: RunSettings,
    out: Path,
    *,
    on_update: UpdateCallback | None,
    stop: threading.Event,
    progress: Callable[[int], None] | None,
    attach: Callable[[LiveSession], None] | None,
    stay_open: bool,
    session_options: dict[str, Any],
) -> RunSummary:
    modality = get_modality(live.modality)
    run_info = {
        "modality": modality.name,
        "frames": settings.frames,
        "exposure_ms": live.exposure_ms,
        "laser_line": live.line,
        "power_mw": live.power,
        "set_properties": settings.properties,
    }
    options = dict(session_options)
    if settings.reconstruction is not None:
        options["reconstructions"] = {modality.name: settings.reconstruction}
    if settings.fluctuation is not None:
        options["fluctuation"] = settings.fluctuation
    if modality.name == "smlm":
        options.update(smlm=settings.smlm, smlm_frames=settings.set_frames)
    optimizer = _live_advisor(scope, live, settings)
    session = LiveSession(
        scope,
        live,
        out,
        overwrite=settings.overwrite,
        run_info=run_info,
        keep_raw_sum=on_update is not None,
        optimizer=optimizer,
        **options,
    )
    density = None
    if settings.target_density is not None and modality.name == "smlm":
        target = DensityTarget(per_um2=settings.target_density)
        density = DensityDriver(session, target, series=modality.name)
    if settings.optimize:
        session.set_optimizer_enabled(True)
    sequencing = session.sequencing()
    session.writer.run_info["sequencing"] = sequencing
    first = modality.name
    reconstructed = settings.method() is not None
    start = time.perf_counter()
    stored = [0]

    def on_stored(info: StoredSet) -> None:
        if info.series == first:
            stored[0] += 1
            if progress:
                progress(min(stored[0], settings.frames))
            if on_update and not reconstructed:
                shown = session.preview(lambda f: f.sum(axis=0, dtype=np.float32))
                if shown is not None:
                    on_update(shown.image, None, _info(info.t, None))

    def _info(t: int, result: SRResult | None) -> dict[str, Any]:
        status = f"{modality.name}, {sequencing} sequencing"
        state = session.writer.series.get(first)
        params = getattr(state.recon, "current_params", lambda: None)() if state else None
        if params is not None:
            status += f"; pattern {params.summary()}"
        if state is not None and isinstance(state.recon, FluctuationReconstructor):
            f = state.recon.settings
            status += f"; {f.method} of {f.window} frames every {f.step}"
        if result is not None and result.details:
            status += "; " + smlm_status(result.details)
        return {
            "t": t + 1,
            "of": settings.frames,
            "frames": session.engine.stats.frames_acquired,
            "dropped": session.engine.stats.frames_dropped,
            "recon_ms": result.recon_ms if result else None,
            "status": status,
        }

    session.events.stored.connect(on_stored)
    if on_update is not None:
        session.events.result.connect(
            lambda r: on_update(r.raw_sum, r.image, _info(r.t, r)) if r.series == first else None
        )
    if attach is not None:
        attach(session)
    forced = interrupted = False
    try:
        session.start(settings.frames)
        while not session.wait(0.05):
            if stop.is_set():
                session.abort()
        interrupted = session.interrupted
        if stay_open:
            stop.wait()
            interrupted = interrupted or session.interrupted or session.running
    except KeyboardInterrupt:
        log.warning("interrupted: lasers off, closing the store")
        forced = interrupted = True
    finally:
        session.abort()
        session.wait()
        interrupted = interrupted or (stop.is_set() and settings.frames > stored[0])
        summary = session.close(complete=not interrupted, drain=not forced)
    summary.interrupted = interrupted
    summary.sequencing = sequencing
    summary.wall_s = time.perf_counter() - start
    summary.raw_fps = summary.raw_frames_acquired / summary.wall_s if summary.wall_s else 0.0
    state = session.writer.series.get(first)
    if state is not None and state.recon is not None and state.recon.times_ms:
        summary.recon_ms_median = float(np.median(state.recon.times_ms))
        if isinstance(state.recon, SIMReconstructor):
            summary.sim_parameters = _params_dict(state.recon.current_params())
        if isinstance(state.recon, FluctuationReconstructor):
            summary.fluctuation = state.recon.settings.parameters()
    details = getattr(state.recon, "details", None) if state is not None else None
    if details is not None or density is not None:
        summary.smlm = {
            **(details() if details is not None else {}),
            "density_control": density.summary() if density is not None else None,
        }
    return summary


def _live_advisor(scope: Microscope, live: LiveSettings, settings: RunSettings) -> SessionAdvisor:
    """The learned optimizer the window (or ``--optimize``) can switch on."""
    return SessionAdvisor(
        scope.profile,
        live.line,
        live.exposure_ms,
        goal=settings.goal,
        target_quality=settings.target_quality or DEFAULT_TARGET_QUALITY,
        readout_ms=scope.readout_ms,
    )


def _params_dict(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    return {
        "period_nm": [round(float(v), 3) for v in np.atleast_1d(params.period_nm)],
        "angles_deg": [round(float(v), 3) for v in np.atleast_1d(params.angles_deg)],
        "modulation": [round(float(v), 3) for v in np.atleast_1d(params.modulation)],
        "found": [bool(v) for v in params.found],
        "pattern": params.report(),
    }
