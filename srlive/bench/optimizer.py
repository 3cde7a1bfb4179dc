"""Fixed settings against the learned optimizer on bleaching samples.

Every arm runs through the same simulated devices and the same Micro-Manager core: a
low-light 2D-SIM timelapse (sim9, 488 nm, 128×128, static sample) reconstructed by Wiener SIM
with pattern parameters calibrated once, at full light on a separate field (an instrument
calibration, no dose to the samples). Setting the hub's ``Seed`` before each arm rebuilds the
sample, resets its dose to zero and restarts the camera noise stream, so all arms of a sample
type image the same sample with the same noise.

Arms: (a) the profile's default power and exposure; (b) every setting of a power × exposure
grid, the best in hindsight; (c) the optimizer (goal ``min-dose-at-quality``) with each
policy — ``adaptive`` (settings follow the bleaching) and ``steady`` (learn, then hold one
planned setting) — which sees only what a real microscope would: the raw frames, their
metadata and the camera's noise model.
The score of a timepoint is the SSIM of its SR image against the simulator's ground truth
(the current density blurred to the 2D-SIM limit, as `srlive evaluate` does); a timepoint is
*good* when it reaches ``SSIM_THRESHOLD``. Grid arms stop early once the sample is too faint
for them (``STOP_AFTER`` bad sets in a row: a fixed setting on a static, bleaching sample
cannot recover); the hindsight-best setting is then run in full for its dose and fluorescence.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulators.devices import hub_world
from simulators.optics import blur
from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.modalities import get_modality, slm_images
from srlive.acquisition.plan import repeated_sets
from srlive.bench.common import simulated_scope
from srlive.hardware.microscope import Microscope
from srlive.learn.data import sim_target_otf
from srlive.learn.eval_fields import to_hi_grid
from srlive.optimize.advisors import SeriesAdvisor, search_space
from srlive.optimize.optimizer import POLICIES, Optimizer
from srlive.optimize.prior import load_prior
from srlive.optimize.protocol_plans import OptimizedPlans, SeriesControl
from srlive.pipeline.optimizer_driver import OptimizerDriver
from srlive.pipeline.runner import noise_model
from srlive.pipeline.signal_tracker import SignalTracker
from srlive.profiles import load_profile
from srlive.recon.similarity import ssim
from srlive.recon.wiener_sim import WienerSIM

SSIM_THRESHOLD = 0.65
TARGET_QUALITY = 0.68  # the optimizer's target (its own quality proxy), a margin above it
STOP_AFTER = 8
SIZE = 128
MAX_POWER_MW = 80.0  # the user's cap for this sample (below the SMLM blinking regime)
GRID_POWERS = tuple(float(p) for p in np.round(np.geomspace(1.0, MAX_POWER_MW, 8), 2))
GRID_EXPOSURES = (5.0, 10.0, 20.0)


@dataclass(frozen=True)
class SampleType:
    """A bench sample: structure, brightness and how fast it bleaches."""

    kind: str
    seed: int
    brightness: float  # photons per camera pixel per mW·ms for unit density
    bleach_half_dose_mj: float


SAMPLE_TYPES: dict[str, SampleType] = {
    "microtubules-bright-fragile": SampleType("microtubules", 21, 20.0, 40.0),
    "er-dim": SampleType("er", 22, 5.0, 80.0),
    "mitochondria-dim-slow": SampleType("mitochondria", 23, 4.0, 100.0),
    "vesicles-medium": SampleType("vesicles", 24, 10.0, 60.0),
    "microtubules-dim-fast": SampleType("microtubules", 25, 6.0, 25.0),
    "er-bright-fragile": SampleType("er", 26, 15.0, 30.0),
    "mitochondria-bright-fragile": SampleType("mitochondria", 27, 12.0, 35.0),
}


@dataclass
class ArmResult:
    """One timelapse: per-timepoint settings and scores, and the totals."""

    name: str
    power_mw: list[float]
    exposure_ms: list[float]
    ssim: list[float]
    dose_mj: float = 0.0
    remaining: float = 1.0
    stopped_early: bool = False
    decisions: list[dict[str, Any]] | None = None

    @property
    def good(self) -> int:
        return int(sum(s >= SSIM_THRESHOLD for s in self.ssim))


class _Bench:
    def __init__(self, profile_name: str | None, timepoints: int) -> None:
        self.profile = load_profile(profile_name)
        self.scope: Microscope = simulated_scope(self.profile, SIZE)
        self.core = self.scope.core
        self.hub = self.profile.roles.simulator_hub or "SimHub"
        self.timepoints = timepoints
        self.line = self.profile.defaults.laser_line
        self.sim9 = get_modality("sim9")
        self.world = hub_world(self.hub)
        self.images = tuple(slm_images(self.profile, self.sim9, self.line, self.scope.slm_shape))
        self.wiener = WienerSIM(
            (SIZE, SIZE),
            self.profile.optics.pixel_nm,
            self.profile.optics.na,
            self.profile.optics.emission_for(self.line),
            offset_adu=self.scope.camera_offset_adu,
        )
        self.target_otf = sim_target_otf(self.world.grid_shape)
        self._calibrate()

    def _calibrate(self) -> None:
        """Pattern parameters from a bright, separate field (not one of the bench samples)."""
        self._reset(SampleType("microtubules", 999, 20.0, 1e9))
        frames: dict[str, np.ndarray] = {}
        engine = Engine(self.scope)
        engine.events.set_complete.connect(lambda p, f, m: frames.__setitem__("f", f))
        engine.run(repeated_sets(self.sim9, self.line, 20.0, 10.0, self.images, 1))
        self.wiener.calibrate(frames["f"])

    def _reset(self, sample: SampleType) -> None:
        core, hub = self.core, self.hub
        core.setProperty(hub, "Sample", sample.kind)
        core.setProperty(hub, "BrightnessPhotonsPerMWms", sample.brightness)
        core.setProperty(hub, "BleachHalfDoseMJ", sample.bleach_half_dose_mj)
        core.setProperty(hub, "Seed", sample.seed)  # rebuilds the sample: dose 0, same noise

    def score(self, frames: np.ndarray) -> float:
        truth = blur(self.world.ground_truth(), self.target_otf)
        sr = to_hi_grid(self.wiener.reconstruct(frames))
        m = SIZE // 16
        return ssim(sr[m:-m, m:-m], truth[m:-m, m:-m])

    def _finish(self, arm: ArmResult) -> ArmResult:
        arm.dose_mj = float(self.core.getProperty(self.hub, "DoseMJ"))
        arm.remaining = float(self.core.getProperty(self.hub, "SurvivingFraction"))
        return arm

    def fixed(
        self, sample: SampleType, power: float, exposure: float, name: str, early_stop: bool
    ) -> ArmResult:
        self._reset(sample)
        arm = ArmResult(name, [], [], [])
        stop = threading.Event()

        def on_set(plan: SetPlan, frames: np.ndarray, metas: list) -> None:
            arm.power_mw.append(plan.power_mw)
            arm.exposure_ms.append(plan.exposure_ms)
            arm.ssim.append(self.score(frames))
            recent = arm.ssim[-STOP_AFTER:]
            if early_stop and len(recent) == STOP_AFTER and max(recent) < SSIM_THRESHOLD:
                arm.stopped_early = True
                stop.set()

        engine = Engine(self.scope)
        engine.events.set_complete.connect(on_set)
        plans = repeated_sets(self.sim9, self.line, power, exposure, self.images, self.timepoints)
        engine.run(plans, stop)
        return self._finish(arm)

    def optimized(self, sample: SampleType, policy: str = "adaptive", seed: int = 0) -> ArmResult:
        self._reset(sample)
        prof = self.profile
        arm = ArmResult(f"optimizer-{policy}", [], [], [], decisions=[])
        engine = Engine(self.scope)
        space = search_space(
            prof,
            self.line,
            prof.defaults.exposure_ms,
            ["sim9"],
            max_power_mw=MAX_POWER_MW,
            readout_ms=self.scope.readout_ms,
        )
        optimizer = Optimizer(
            space,
            load_prior(),
            goal="min-dose-at-quality",
            target_quality=TARGET_QUALITY,
            n_timepoints=self.timepoints,
            seed=seed,
            policy=policy,
        )
        advisor = SeriesAdvisor(optimizer, "bench", self.timepoints, prof.optics.pixel_nm / 2)
        plans = repeated_sets(
            self.sim9,
            self.line,
            prof.defaults.power_mw,
            prof.defaults.exposure_ms,
            self.images,
            self.timepoints,
        )
        control = SeriesControl((0, str(self.line)), advisor, space, self.timepoints)
        source = OptimizedPlans(
            [_with_channel(p, str(self.line)) for p in plans],
            {(0, str(self.line)): control},
            engine,
            prof,
            self.scope.slm_shape,
            decision_timeout_s=2.0,  # a 2 s timepoint interval, compressed: no idle time
        )

        driver = OptimizerDriver(source.advisor, source.receive, warm_up=(advisor,))
        tracker = SignalTracker(noise_model(self.scope))

        def on_set(plan: SetPlan, frames: np.ndarray, metas: list) -> None:
            arm.power_mw.append(plan.power_mw)
            arm.exposure_ms.append(plan.exposure_ms)
            arm.ssim.append(self.score(frames))
            after = engine.stats.dose_mj.get(0, 0.0)
            before = after - plan.power_mw * plan.exposure_ms * plan.n_frames / 1000.0
            left = None if engine.dose_budget_mj is None else engine.dose_budget_mj - after
            light = (plan.power_mw, plan.exposure_ms, (max(0.0, before), left))
            time_s = float(metas[-1].get("time_s", 0.0))
            name = plan.modality.name
            driver.offer(tracker.update("bench", name, plan.t, time_s, frames, *light))

        engine.events.set_complete.connect(on_set)
        try:
            engine.run(source)
        finally:
            driver.stop()
        arm.decisions = [d.to_record() for d in control.applied]
        return self._finish(arm)

    def close(self) -> None:
        self.scope.make_safe()
        self.core.unloadAllDevices()


def _with_channel(plan: SetPlan, channel: str) -> SetPlan:
    from dataclasses import replace

    return replace(plan, channel=channel)


def convergence(values: Sequence[float], tolerance: float = 0.1, tail: int = 20) -> int:
    """First timepoint from which every value stays within ``tolerance`` of the final one.

    The final value is the median of the last ``tail`` values.
    """
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return 0
    final = float(np.median(v[-tail:]))
    outside = np.nonzero(np.abs(v - final) > tolerance * abs(final))[0]
    return int(outside[-1] + 1) if outside.size else 0


def _summary(arm: ArmResult) -> dict[str, Any]:
    return {
        "good_timepoints": arm.good,
        "dose_mj": round(arm.dose_mj, 2),
        "remaining_fluorescence": round(arm.remaining, 4),
        "power_mw": [round(arm.power_mw[0], 3), round(arm.power_mw[-1], 3)] if arm.power_mw else [],
        "exposure_ms": [round(arm.exposure_ms[0], 3), round(arm.exposure_ms[-1], 3)]
        if arm.exposure_ms
        else [],
        "timepoints": len(arm.ssim),
    }


def _optimizer_summary(opt: ArmResult, default: ArmResult, best: ArmResult) -> dict[str, Any]:
    decisions = [d for d in opt.decisions or [] if d.get("decision_ms") is not None]
    times = [d.get("total_ms", d["decision_ms"]) for d in decisions]
    signals = [d.get("predicted_signal_e") for d in decisions]
    late = sum(bool(d.get("late")) for d in opt.decisions or [])
    light = [p * e for p, e in zip(opt.power_mw, opt.exposure_ms, strict=True)]
    return {
        **_summary(opt),
        "convergence_power": convergence(opt.power_mw),
        "convergence_exposure": convergence(opt.exposure_ms),
        "convergence_light": convergence(light),
        "convergence_operating_point": convergence([s for s in signals if s is not None]),
        "decision_ms_median": round(float(np.median(times)), 1) if times else None,
        "decision_ms_max": round(float(np.max(times)), 1) if times else None,
        "late_decisions": late,
        "ratio_vs_default": round(opt.good / max(default.good, 1), 3),
        "ratio_vs_hindsight": round(opt.good / max(best.good, 1), 3),
    }


def bench_optimizer(
    timepoints: int = 200,
    samples: Sequence[str] | None = None,
    profile: str | None = None,
    progress: Callable[[str], None] | None = None,
    plot: str | None = None,
) -> dict[str, Any]:
    """Run the three arms on each sample type; JSON-ready results."""
    names = list(samples or SAMPLE_TYPES)
    unknown = [n for n in names if n not in SAMPLE_TYPES]
    if unknown:
        raise ValueError(f"unknown sample type(s) {unknown} (choose from {list(SAMPLE_TYPES)})")
    start = time.perf_counter()
    bench = _Bench(profile, timepoints)
    prof = bench.profile
    results: dict[str, Any] = {}
    traces: dict[str, dict[str, ArmResult]] = {}
    try:
        for name in names:
            sample = SAMPLE_TYPES[name]
            say = progress or (lambda _m: None)
            say(f"{name}: default")
            default = bench.fixed(
                sample, prof.defaults.power_mw, prof.defaults.exposure_ms, "default", False
            )
            grid = []
            for exposure in GRID_EXPOSURES:
                for power in GRID_POWERS:
                    say(f"{name}: grid {power:g} mW × {exposure:g} ms")
                    grid.append(bench.fixed(sample, power, exposure, "grid", True))
            best = max(grid, key=lambda a: (a.good, -a.power_mw[0] * a.exposure_ms[0]))
            say(f"{name}: hindsight best {best.power_mw[0]:g} mW × {best.exposure_ms[0]:g} ms")
            best = bench.fixed(sample, best.power_mw[0], best.exposure_ms[0], "hindsight", False)
            arms = {}
            for policy in POLICIES:
                say(f"{name}: optimizer ({policy})")
                arms[policy] = bench.optimized(sample, policy)
            results[name] = {
                "sample": sample.__dict__,
                "default": _summary(default),
                "hindsight_best": {
                    **_summary(best),
                    "setting": [best.power_mw[0], best.exposure_ms[0]],
                    "grid_good": {
                        f"{a.power_mw[0]:g}mW×{a.exposure_ms[0]:g}ms": a.good for a in grid
                    },
                },
                **{
                    f"optimizer_{policy}": _optimizer_summary(opt, default, best)
                    for policy, opt in arms.items()
                },
            }
            traces[name] = {"default": default, "hindsight": best, **arms}
    finally:
        bench.close()
    out = {
        "benchmark": "optimizer",
        "timepoints": timepoints,
        "ssim_threshold": SSIM_THRESHOLD,
        "target_quality": TARGET_QUALITY,
        "frame": [SIZE, SIZE],
        "modality": "sim9 (Wiener SIM)",
        "grid": {"powers_mw": list(GRID_POWERS), "exposures_ms": list(GRID_EXPOSURES)},
        "results": results,
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_count": os.cpu_count(),
    }
    if plot:
        try:
            out["plot"] = write_plot(traces, plot)
        except Exception as exc:  # a plot must never cost the measurements
            out["plot"] = f"failed: {exc}"
    return out


def write_plot(traces: dict[str, dict[str, ArmResult]], path: str) -> str | None:
    """PNG of light per frame and SSIM over time for each arm (pyqtgraph's exporter)."""
    try:
        import pyqtgraph as pg
        import pyqtgraph.exporters
        from qtpy.QtWidgets import QApplication

        from srlive.viewer.display import offscreen_without_display
    except Exception:  # no Qt: no plot
        return None
    offscreen_without_display()  # headless: Qt would abort the process and lose the results
    app = QApplication.instance() or QApplication([])
    layout = pg.GraphicsLayoutWidget(size=(1200, 380 * len(traces)))
    layout.setBackground("w")
    colours = {
        "default": (200, 60, 60),
        "hindsight": (60, 60, 200),
        "adaptive": (20, 150, 20),
        "steady": (230, 150, 0),
    }
    for row, (name, arms) in enumerate(traces.items()):
        light = layout.addPlot(row=row, col=0, title=f"{name}: power × exposure (mW·ms)")
        light.setLogMode(y=True)
        quality = layout.addPlot(row=row, col=1, title=f"{name}: SR SSIM")
        light.addLegend()
        for label, arm in arms.items():
            pen = pg.mkPen(colours[label], width=2)
            x = np.arange(len(arm.ssim))
            values = np.array(arm.power_mw) * np.array(arm.exposure_ms)
            light.plot(x, values, pen=pen, name=label)
            quality.plot(x, np.array(arm.ssim), pen=pen)
        quality.addLine(y=SSIM_THRESHOLD, pen=pg.mkPen((120, 120, 120), width=1))
    layout.resize(1200, 380 * len(traces))
    layout.show()
    app.processEvents()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    exporter = pg.exporters.ImageExporter(layout.scene())
    exporter.export(path)
    layout.close()
    if not Path(path).is_file():
        raise OSError(f"the exporter wrote nothing to {path}")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timepoints", type=int, default=200, help="timepoints per timelapse")
    parser.add_argument(
        "--samples", nargs="+", default=None, choices=list(SAMPLE_TYPES), help="default: all"
    )
    parser.add_argument("--plot", default=None, help="write a PNG of the arms here")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    if args.timepoints < 20:
        raise ValueError("--timepoints must be at least 20")
    n_samples = len(args.samples or SAMPLE_TYPES)
    arms = n_samples * (2 + len(POLICIES) + len(GRID_POWERS) * len(GRID_EXPOSURES))
    with tqdm(total=arms, unit="arm", file=sys.stderr, disable=None) as bar:

        def progress(message: str) -> None:
            bar.set_description(message)
            bar.update(1)

        return bench_optimizer(
            timepoints=args.timepoints,
            samples=args.samples,
            profile=None,
            progress=progress,
            plot=args.plot,
        )
