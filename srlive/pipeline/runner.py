"""The one acquisition runner: set plans → engine → ring → (store writer, inference) → events.

Live runs (:class:`~srlive.pipeline.session.LiveSession`: the current settings, changed
between sets) and protocols (:func:`~srlive.pipeline.run_protocol.acquire`: a useq plan,
optionally optimized) are sources of :class:`~srlive.acquisition.engine.SetPlan` items
that a :class:`Runner` executes the same way:

* the engine copies each frame from the camera into a ring slot of the
  :class:`~srlive.pipeline.stream.Pipeline` (its frame sink);
* the store writer thread stores every raw set, the inference worker reconstructs sets
  (latest wins live; every set for a protocol) off the acquisition thread;
* ``route(plan)`` names the series a set belongs to and its reconstruction; the series'
  store is created by its first set (or by :meth:`Runner.prepare`, before the camera starts).

The store (see the README's "What is in the store") is one root: a bioformats2raw-style
collection claimed (locked) for the run, with one series store per series in it, each an
NGFF image of raw sets, its SR image and tables. The root says ``complete`` only at the
end of a run in which nothing failed and nothing was cut short.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from srlive.acquisition.engine import Engine, SetPlan
from srlive.acquisition.writer import SeriesWriter, create_root_group
from srlive.hardware.microscope import Microscope
from srlive.pipeline.optimizer_driver import OptimizerDriver
from srlive.pipeline.stream import Pipeline
from srlive.pipeline.summary import RunSummary, SeriesSummary
from srlive.pipeline.worker import Policy
from srlive.recon.fluctuation.method import FluctuationSettings
from srlive.recon.set_metrics import NoiseModel
from srlive.storage.files import software

log = logging.getLogger(__name__)

RING_BUDGET_BYTES = 256 * 2**20
Route = Callable[[SetPlan], tuple[str, str | None]]  # plan -> (series, reconstruction)


def ring_slots(frame_shape: tuple[int, int], max_frames: int, window_sets: int = 1) -> int:
    """Ring slots within :data:`RING_BUDGET_BYTES` (3 to 12; a window's sets and 4 more)."""
    frame_bytes = 2 * frame_shape[0] * frame_shape[1]
    slots = int(np.clip(RING_BUDGET_BYTES // (frame_bytes * max_frames), 3, 12))
    return max(slots, window_sets + 4) if window_sets > 1 else slots


def noise_model(scope: Microscope) -> NoiseModel:
    """The camera's noise model (the profile's values, else the camera's properties)."""
    camera = scope.camera_noise
    return NoiseModel.from_camera(
        camera.offset_adu, camera.e_per_adu, camera.read_noise_e, scope.profile.camera.bit_depth
    )


class Runner:
    """Runs set plans through the engine and the pipeline into one run store."""

    def __init__(
        self,
        scope: Microscope,
        out: str | Path,
        route: Route,
        *,
        max_frames: int,
        run_info: dict[str, Any],
        overwrite: bool = False,
        policy: Policy = "latest",
        slots: int | None = None,
        threads: int | None = None,
        device: str = "auto",
        keep_raw_sum: bool = False,
        inference: str = "process",
        pin_cpus: bool = False,
        hardware_sequencing: bool = True,
        dose_budget_mj: float | None = None,
        fluctuation: FluctuationSettings | None = None,
        smlm: Any = None,
        metrics_interval_s: float = 0.25,
        metrics_for: Callable[[str], object] | None = None,
    ) -> None:
        self.scope = scope
        self.profile = scope.profile
        self.out = Path(out)
        self.route = route
        self.run_info = run_info
        window_sets = (fluctuation or FluctuationSettings()).sets_per_window if fluctuation else 1
        self._claim = create_root_group(
            self.out,
            {"software": software(), "layout": "series", "series": [], "complete": False}
            | run_info,
            overwrite,
        )
        try:
            self.writer = SeriesWriter(
                self.profile,
                scope.frame_shape,
                scope.camera_noise,
                run_info,
                path_for=lambda name: self.out / name,
                overwrite=overwrite,
                device=device,
                fluctuation=fluctuation,
                smlm=smlm,
            )
            self.engine = Engine(
                scope, hardware_sequencing=hardware_sequencing, dose_budget_mj=dose_budget_mj
            )
            self.pipeline = Pipeline(
                self.writer,
                scope.frame_shape,
                max_frames,
                clock_origin=lambda: self.engine.t0,
                slots=ring_slots(scope.frame_shape, max_frames, window_sets)
                if slots is None
                else slots,
                threads=threads,
                keep_raw_sum=keep_raw_sum,
                inference=inference,
                policy=policy,
                metrics_interval_s=metrics_interval_s,
                metrics_for=metrics_for,
                pin_cpus=pin_cpus,
                noise=noise_model(scope),
            )
        except BaseException:
            self._claim.release()
            raise
        self.engine.sink = self.pipeline
        self.engine.events.set_complete.connect(self._on_set_complete)
        self.driver: OptimizerDriver | None = None
        self._closed = False
        self.complete = False  # the store was marked complete at the end
        self.error: str | None = None  # the first acquisition or storage error

    # --- optimizer ----------------------------------------------------------------------
    def drive(self, driver: OptimizerDriver) -> OptimizerDriver:
        """Feed ``driver`` every measured set and SR image of the run."""
        self.driver = driver
        self.pipeline.events.metrics.connect(driver.offer)
        self.pipeline.events.result.connect(
            lambda r: driver.add_sr(r.series, r.t, r.image, r.confidence)
        )
        return driver

    # --- acquisition --------------------------------------------------------------------
    def prepare(self, plan: SetPlan) -> None:
        """The series of ``plan`` ready (store, reconstructor, model process) before the
        camera starts."""
        series, recon = self.route(plan)
        state = self.writer.series_for(series, plan, recon)
        if state.recon is not None:
            self.pipeline.ensure_inference()

    def run(
        self,
        plans: Iterable[SetPlan],
        stop: threading.Event | None = None,
        stop_at_set: threading.Event | None = None,
    ) -> int:
        """Run ``plans`` on the calling thread; the number of sets completed.

        The microscope is made safe however this ends (the engine's guarantee).
        """
        before = self.engine.stats.sets_completed
        self.engine.run(plans, stop, stop_at_set)
        return self.engine.stats.sets_completed - before

    def _on_set_complete(self, plan: SetPlan, frames: np.ndarray, metas: list[dict]) -> None:
        series, recon = self.route(plan)
        self.pipeline.on_set_complete(plan, frames, metas, series, recon, self._dose(plan))

    def _dose(self, plan: SetPlan) -> tuple[float, float | None]:
        """The sample's dose before ``plan``'s set (just completed) and the budget left."""
        after = self.engine.stats.dose_mj.get(plan.sample_key, 0.0)
        before = max(0.0, after - plan.total_power_mw * plan.exposure_ms * plan.n_frames / 1000.0)
        budget = self.engine.dose_budget_mj
        return before, None if budget is None else max(0.0, budget - after)

    def dose_mj(self) -> float:
        """Light dose delivered to the samples so far (every acquired frame counted)."""
        return float(sum(self.engine.stats.dose_mj.values()))

    @property
    def write_error(self) -> str | None:
        return self.pipeline.write_error

    # --- end ----------------------------------------------------------------------------
    def close(
        self, complete: bool, drain: bool = True, finish: Callable[[], None] | None = None
    ) -> bool:
        """Finish reconstruction and storage, make the microscope safe, release the store.

        ``finish`` writes what else the run keeps (the optimizer's tables) while the store is
        still claimed. The series and the root are marked complete only if ``complete`` and
        nothing failed; returns whether they were.
        """
        if self._closed:
            return False
        self._closed = True
        try:
            self.pipeline.close(drain=drain)
            if self.driver is not None:
                self.driver.stop()
        finally:
            self.scope.make_safe()
            ok = complete and self.error is None and self.write_error is None
            try:
                self.writer.close(complete=ok)
            except Exception as exc:  # the stores say incomplete; the command says why
                self.error = self.error or f"{type(exc).__name__}: {exc}"
                ok = False
            try:
                if finish is not None:
                    finish()
            finally:
                self._finish_root(ok)
                self._claim.release()
        self.complete = ok
        return ok

    def _finish_root(self, complete: bool) -> None:
        """The final state into the root (best effort: a full disk leaves the root saying
        ``complete: false``, as it did from the start)."""
        try:
            root = zarr.open_group(str(self.out), mode="r+")
            before: dict[str, Any] = dict(root.attrs.asdict().get("srlive") or {})  # type: ignore[arg-type]
            root.attrs["srlive"] = {
                **before,
                "series": sorted(self.writer.series),
                "complete": complete,
                "stopped_by": self.engine.stats.stopped_by,
            }
        except OSError as exc:
            log.error("%s: final state not written: %s", self.out, exc)

    def summary(self, kind: str, **extra: Any) -> RunSummary:
        """The run so far, as a :class:`RunSummary` (``extra``: its other fields)."""
        stats = self.engine.stats
        series = {
            name: SeriesSummary(
                path=str(self.out / name),
                modality=s.modality,
                sets=s.sets,
                frames=s.frames,
                sr_images=s.sr_images,
                sr_skipped=s.sr_skipped,
                raw_path=f"{name}/raw/0",
                sr_path=f"{name}/sr/0" if s.recon is not None else None,
            )
            for name, s in self.writer.series.items()
        }
        pipe = self.pipeline.summary()
        times = self.writer.recon_times_ms()
        return RunSummary(
            output=str(self.out),
            kind=kind,
            series=series,
            sets_completed=stats.sets_completed,
            raw_frames_acquired=stats.frames_acquired,
            raw_frames_stored=self.writer.frames_stored,
            raw_frames_dropped=stats.frames_acquired - self.writer.frames_stored,
            sr_images=self.writer.sr_images,
            sr_skipped=self.writer.sr_skipped,
            dose_mj={str(k): round(v, 4) for k, v in stats.dose_mj.items()},
            stopped_by=stats.stopped_by,
            recon_ms_median=float(np.median(times)) if times else None,
            latency_ms=pipe["latency_ms"]["to_result"],
            pipeline=pipe,
            lasers_on_at_end=[
                ln for ln in self.profile.laser_lines if self.scope.laser_is_on(ln)
            ],
            complete=self.complete,
            error=self.error or self.write_error,
            **extra,
        )
