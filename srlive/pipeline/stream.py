"""The live pipeline: engine → ring buffer → (raw writer thread, inference worker) → subscribers.

* The engine fills ring slots directly (the pipeline is its :class:`FrameSink`).
* Every complete set goes to the **store writer thread** through a FIFO (lossless: a set
  holds its slot until it is stored; if the writer falls behind, the engine waits for a slot
  while the camera keeps filling the core's buffer). The same thread stores SR images and
  "skipped" rows, and computes the signal / bleaching metrics of each set.
* Sets with a reconstruction go to the **inference worker** (latest wins); its results are
  published on :attr:`Pipeline.events` (``result``), skipped sets on ``skipped``. By default
  the model runs in a child process on the set in shared memory (:mod:`.process`: no GIL
  shared with the camera, engine, writer and GUI); ``inference="thread"`` keeps it in-process.
* The newest set is also kept as the **display preview**: a GUI pulls it at its own rate
  with :meth:`Pipeline.preview`, so the camera rate never reaches the GUI thread.
* A reconstruction of a **window** of sets (fluctuation methods: ``recon.window_sets`` > 1)
  keeps the series' last ``window_sets`` sets held in the ring; each new set completes a
  window, which the worker takes whole (latest wins, as for single sets). The first sets of
  a series, before a window is full, are recorded as not reconstructed.
"""

from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from srlive.acquisition.engine import SetPlan
from srlive.acquisition.writer import SeriesState, SeriesWriter
from srlive.optimize.metrics import NoiseModel
from srlive.pipeline.cpus import pin_current_thread
from srlive.pipeline.latency import LatencyTracker
from srlive.pipeline.metrics import SignalTracker
from srlive.pipeline.process import InferenceProcess
from srlive.pipeline.ring import SetRing, Slot
from srlive.pipeline.worker import InferenceWorker, default_threads

log = logging.getLogger(__name__)


def shm_fits(nbytes: int) -> bool:
    """Is there room for ``nbytes`` of shared memory (containers often give /dev/shm 64 MB)?"""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:  # no /dev/shm: not Linux, where shared memory is not a small tmpfs
        return True
    return free >= 1.1 * nbytes


@dataclass
class SRResult:
    """One reconstruction, as published to subscribers (viewer, callbacks)."""

    series: str
    t: int
    plan: SetPlan
    image: np.ndarray
    confidence: float
    recon_ms: float
    stamps: dict[str, float]
    latency_ms: dict[str, float]
    raw_sum: np.ndarray | None = None  # widefield sum of the set, when asked for
    error: np.ndarray | None = None  # a learned model's expected error per SR pixel


@dataclass
class PipelineStats:
    """Every set and frame accounted for."""

    sets_in: int = 0
    frames_in: int = 0
    raw_sets_stored: int = 0
    raw_frames_stored: int = 0
    raw_write_errors: int = 0
    sr_results: int = 0
    sr_skipped: int = 0
    sr_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PipelineEvents(SignalGroup):
    """Signals of the pipeline (emitted from its worker threads)."""

    result = Signal(object)  # SRResult
    skipped = Signal(object)  # {"series", "t"}
    stored = Signal(object)  # {"series", "t", "frames"}
    metrics = Signal(object)  # dict, see srlive.pipeline.metrics
    error = Signal(str)  # one line
    write_failed = Signal(str)  # the first failed store write (one line): stop acquiring


@dataclass
class _Job:
    kind: str  # "raw" | "sr" | "skip"
    state: SeriesState
    t: int
    slot: Slot | None = None
    image: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: np.ndarray | None = None  # the SR image's expected error map


class Pipeline:
    """Wires the engine's sets to the store writer, the inference worker and the display."""

    def __init__(
        self,
        writer: SeriesWriter,
        frame_shape: tuple[int, int],
        max_frames: int,
        *,
        clock_origin: Callable[[], float],
        slots: int = 8,
        threads: int | None = None,
        window: int = 200,
        keep_raw_sum: bool = False,
        inference: str = "process",
        metrics_interval_s: float = 0.25,
        pin_cpus: bool = False,
        noise: NoiseModel | None = None,
    ) -> None:
        if inference not in ("process", "thread"):
            raise ValueError(f"inference must be 'process' or 'thread', got {inference!r}")
        nbytes = slots * max_frames * frame_shape[0] * frame_shape[1] * 2
        if inference == "process" and not shm_fits(nbytes):
            log.warning(
                "not enough shared memory (/dev/shm) for a %.0f MB ring: inference on a thread",
                nbytes / 2**20,
            )
            inference = "thread"
        self.writer = writer
        self.inference = inference
        # acquisition on one core, inference on the others; only with an inference process:
        # threads that share one GIL must not be split (a GIL holder preempted on a busy
        # core would stall the other side)
        self.pin_cpus = pin_cpus and inference == "process"
        self.metrics_interval_s = metrics_interval_s
        self.noise = noise or NoiseModel(offset_adu=writer.offset_adu)
        self._last_metrics = -math.inf
        self.ring = SetRing(slots, max_frames, frame_shape, shared=inference == "process")
        self.ring_mb = round(self.ring.nbytes / 2**20, 2)
        self.clock_origin = clock_origin
        self.keep_raw_sum = keep_raw_sum
        self.events = PipelineEvents()
        self.stats = PipelineStats()
        self.latency = LatencyTracker(window)
        self.threads = default_threads() if threads is None else threads
        self._trackers: dict[str, SignalTracker] = {}
        self._filling: Slot | None = None
        self._windows: dict[str, deque[Slot]] = {}  # series -> its last sets (held)
        self._windows_lock = threading.Lock()
        self._preview: Slot | None = None
        self._preview_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.write_error: str | None = None  # the first failed store write
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="srlive-store-writer", daemon=True
        )
        self._writer_thread.start()
        self._proc: InferenceProcess | None = None
        self._proc_lock = threading.Lock()
        self._proc_closed = False
        self.worker = InferenceWorker(
            self._reconstruct,
            self._on_result,
            self._on_skipped,
            self._on_error,
            threads=self.threads if inference == "thread" else None,
        )
        self._closed = False

    def ensure_inference(self) -> None:
        """Start the inference process now (else the first set to reconstruct starts it)."""
        if self.inference != "process":
            return
        with self._proc_lock:
            if self._proc is None and not self._proc_closed:
                self._proc = InferenceProcess(
                    self.ring.shm_name or "",
                    self.ring.buffer.shape,
                    self.threads,
                    self.pin_cpus,
                    upscale=self.writer.max_upscale,
                )

    def inference_stats(self) -> dict[str, float | None]:
        """Peak RSS and CUDA memory of the inference process (empty when on a thread)."""
        return self._proc.stats() if self._proc is not None else {}

    @property
    def inference_pid(self) -> int | None:
        """The inference process (None when inference runs on a thread)."""
        return self._proc.pid if self._proc is not None else None

    # --- the engine's FrameSink ------------------------------------------------------
    def claim(self, plan: SetPlan) -> np.ndarray:
        """A ring slot for the next set (waits while every slot is held)."""
        slot = self.ring.claim(plan.n_frames)
        self._filling = slot
        return slot.frames

    def abandon(self, frames: np.ndarray) -> None:
        """An incomplete set: its slot goes back to the ring."""
        slot = self._take_filling(frames)
        self.ring.release(slot)

    def _take_filling(self, frames: np.ndarray) -> Slot:
        slot = self._filling
        if slot is None or not np.shares_memory(frames, slot.block):
            slot = self.ring.slot_of(frames)
        self._filling = None
        return slot

    # --- the engine's set_complete subscriber ----------------------------------------
    def on_set_complete(
        self,
        plan: SetPlan,
        frames: np.ndarray,
        metas: list[dict[str, Any]],
        series: str,
        reconstruction: str | None,
    ) -> None:
        """Hand a complete set (in its ring slot) to the writer, inference and preview."""
        now = time.perf_counter()
        slot = self._take_filling(frames)
        state = self.writer.series_for(series, plan, reconstruction)
        t = state.next_t
        state.next_t += 1
        exposure_end = metas[-1].get("exposure_end_s", metas[-1].get("time_s"))
        stamps: dict[str, float] = {}
        if exposure_end is not None:
            stamps["exposure_end"] = min(self.clock_origin() + float(exposure_end), now)
        stamps["set_complete"] = now
        slot.plan, slot.metas = plan, metas
        slot.info = {"series": series, "t": t, "state": state, "stamps": stamps}
        self.stats.sets_in += 1
        self.stats.frames_in += len(frames)
        reconstruct = state.recon is not None
        window_sets = int(getattr(state.recon, "window_sets", 1))
        # writer, preview, (inference), (the series' window)
        self.ring.retain(slot, 2 + int(reconstruct) + int(window_sets > 1))
        self._jobs.put(_Job("raw", state, t, slot=slot))
        self._set_preview(slot)
        self.ring.release(slot)  # the producer's hold
        if not reconstruct:
            return
        if window_sets > 1:
            window = self._add_to_window(series, slot, window_sets)
            if window is None:
                self._on_skipped(slot)  # no full window yet
                return
            slot.info["window"], slot.info["window_sets"] = window, len(window)
        self.worker.offer(slot)

    # --- windows of sets (fluctuation) --------------------------------------------------
    def _add_to_window(self, series: str, slot: Slot, n_sets: int) -> list[Slot] | None:
        """Add ``slot`` (held once for the window) to ``series``' window.

        The full window, oldest first, each older set held once more for the inference
        (released with :meth:`_release_window`); None while the window is filling.
        """
        with self._windows_lock:
            window = self._windows.setdefault(series, deque())
            window.append(slot)
            if len(window) > n_sets:
                self.ring.release(window.popleft())
            if len(window) < n_sets:
                return None
            sets = list(window)
        for older in sets[:-1]:
            self.ring.retain(older)
        return sets

    def _release_window(self, slot: Slot) -> None:
        """The inference's holds on the older sets of ``slot``'s window."""
        for older in slot.info.pop("window", [])[:-1]:
            self.ring.release(older)

    def reset_windows(self) -> None:
        """Start every window afresh (the stream has a gap: a new run, a new setting)."""
        with self._windows_lock:
            held = [s for window in self._windows.values() for s in window]
            self._windows.clear()
        for slot in held:
            self.ring.release(slot)

    # --- display preview ----------------------------------------------------------------
    def _set_preview(self, slot: Slot) -> None:
        with self._preview_lock:
            old, self._preview = self._preview, slot
        if old is not None:
            self.ring.release(old)

    def preview(
        self, render: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, dict[str, Any]] | None:
        """``render(frames)`` of the newest set not yet previewed, or None (any thread)."""
        with self._preview_lock:
            slot, self._preview = self._preview, None
        if slot is None:
            return None
        try:
            image = render(slot.frames)
            info = {"series": slot.info["series"], "t": slot.info["t"], "plan": slot.plan}
        finally:
            self.ring.release(slot)
        return image, info

    def mark_displayed(self, result: SRResult) -> None:
        """The viewer showed ``result``: adds the display stage to the latency figures."""
        if "displayed" not in result.stamps:
            result.stamps["displayed"] = time.perf_counter()
            self.latency.record_display(result.stamps)

    # --- inference side (worker thread) -------------------------------------------------
    def _reconstruct(self, slot: Slot) -> tuple[np.ndarray, float, np.ndarray | None]:
        """The SR image, its confidence and (learned models) its expected error map."""
        recon = slot.info["state"].recon
        window: list[Slot] | None = slot.info.get("window")
        if self.inference == "thread":
            image, confidence = recon(
                slot.frames if window is None else np.concatenate([s.frames for s in window])
            )
            return image, confidence, getattr(recon, "last_error", None)
        self.ensure_inference()
        if self._proc is None:
            raise RuntimeError("the inference process is closed")
        slots = slot.index if window is None else [s.index for s in window]
        image, confidence, compute_ms = self._proc.reconstruct(recon, slots, slot.n_frames)
        recon.times_ms.append(compute_ms)
        return image, confidence, getattr(recon, "last_error", None)

    def _on_result(self, slot: Slot, result: tuple[np.ndarray, float, np.ndarray | None]) -> None:
        image, confidence, error = result
        state: SeriesState = slot.info["state"]
        t, stamps = slot.info["t"], slot.info["stamps"]
        try:
            raw_sum = slot.frames.sum(axis=0, dtype=np.float32) if self.keep_raw_sum else None
        finally:
            self._release_window(slot)
            self.ring.release(slot)
        latency = self.latency.record(stamps)
        recon_ms = (stamps["result_ready"] - stamps["inference_start"]) * 1000.0
        self.stats.sr_results += 1
        meta = {
            "time_s": slot.metas[-1].get("time_s") if slot.metas else None,
            "recon_ms": recon_ms,
            "confidence": float(confidence),
            "latency_ms": latency.get("to_result", math.nan),
        }
        if n_window := slot.info.get("window_sets"):
            meta.update(window_first_t=t - n_window + 1, window_frames=n_window * slot.n_frames)
        image = np.asarray(image, np.float32)
        self._jobs.put(_Job("sr", state, t, image=image, meta=meta, error=error))
        sr = SRResult(
            slot.info["series"],
            t,
            slot.plan,
            image,
            float(confidence),
            recon_ms,
            stamps,
            latency,
            raw_sum,
            error,
        )
        self.events.result.emit(sr)

    def _on_skipped(self, slot: Slot) -> None:
        state: SeriesState = slot.info["state"]
        t = slot.info["t"]
        meta = {"time_s": slot.metas[-1].get("time_s") if slot.metas else None}
        self._release_window(slot)
        self.ring.release(slot)
        self.stats.sr_skipped += 1
        self._jobs.put(_Job("skip", state, t, meta=meta))
        self.events.skipped.emit({"series": slot.info["series"], "t": t})

    def _on_error(self, slot: Slot, exc: BaseException) -> None:
        self.stats.sr_errors += 1
        self._on_skipped(slot)  # recorded as not reconstructed
        self.events.error.emit(f"reconstruction failed: {exc}")

    # --- store side (writer thread) -----------------------------------------------------
    def _write_loop(self) -> None:
        if self.pin_cpus:
            pin_current_thread("acquisition")
        while (job := self._jobs.get()) is not None:
            try:
                if self.write_error is None:
                    self._write(job)
                elif job.kind == "raw":  # after a failed write nothing more is stored
                    self.stats.raw_write_errors += 1
            except Exception as exc:
                if job.kind == "raw":
                    self.stats.raw_write_errors += 1
                self._write_failed(exc)
            finally:
                if job.slot is not None:
                    self.ring.release(job.slot)

    def _write_failed(self, exc: Exception) -> None:
        """The first failed write ends storing; the session stops acquiring on the signal."""
        if self.write_error is not None:
            return
        self.write_error = f"store write failed: {exc}"
        log.info("%s", self.write_error, exc_info=exc)  # the command reports it in one line
        self.events.error.emit(self.write_error)
        self.events.write_failed.emit(self.write_error)

    def _write(self, job: _Job) -> None:
        name = job.state.name
        if job.kind == "raw":
            slot = job.slot
            assert slot is not None
            self.writer.write_raw(job.state, job.t, slot.plan, slot.frames, slot.metas)
            self.stats.raw_sets_stored += 1
            self.stats.raw_frames_stored += slot.n_frames
            self.events.stored.emit({"series": name, "t": job.t, "frames": slot.n_frames})
            self._emit_metrics(job, slot)
        elif job.kind == "sr":
            assert job.image is not None
            self.writer.write_sr(job.state, job.t, job.image, job.meta, job.error)
            self._tracker(name).confidence = job.meta["confidence"]
        else:
            if job.state.store.sr_method is not None:
                self.writer.write_skipped(job.state, job.t, job.meta)

    def _tracker(self, series: str) -> SignalTracker:
        if series not in self._trackers:
            self._trackers[series] = SignalTracker(self.noise)
        return self._trackers[series]

    def _emit_metrics(self, job: _Job, slot: Slot) -> None:
        now = time.perf_counter()
        if not len(self.events.metrics) or now - self._last_metrics < self.metrics_interval_s:
            return  # nobody listens, or a display-rate worth of sets was already measured
        self._last_metrics = now
        plan = slot.plan
        metrics = self._tracker(job.state.name).update(
            job.t,
            float(slot.metas[-1].get("time_s", math.nan)),
            slot.frames,
            plan.power_mw,
            plan.exposure_ms,
        )
        metrics["series"] = job.state.name
        metrics["modality"] = plan.modality.name
        self.events.metrics.emit(metrics)

    # --- shutdown -----------------------------------------------------------------------
    def close(self, drain: bool = True) -> None:
        """Finish inference (``drain``: the waiting set too), store everything, free threads."""
        if self._closed:
            return
        self._closed = True
        self.worker.stop(drain=drain)
        with self._proc_lock:
            self._proc_closed = True
            if self._proc is not None:
                self._proc.close()
        with self._preview_lock:
            old, self._preview = self._preview, None
        if old is not None:
            self.ring.release(old)
        self.reset_windows()
        self._jobs.put(None)
        self._writer_thread.join()
        self.ring.close()

    def summary(self) -> dict[str, Any]:
        """Counts and latency percentiles (JSON-ready)."""
        return {
            **self.stats.to_dict(),
            "ring_slots": self.ring.n_slots,
            "ring_mb": self.ring_mb,
            "ring_waits": self.ring.waits,
            "ring_wait_s": round(self.ring.wait_s, 4),
            "inference": self.inference,
            "inference_threads": self.threads,
            "latency_ms": self.latency.summary(),
        }
