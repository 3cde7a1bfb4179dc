"""The pipeline: engine → ring buffer → (store writer thread, inference worker) → subscribers.

* The engine fills ring slots directly (the pipeline is its :class:`FrameSink`).
* Every complete set goes to the **store writer thread**
  (:class:`~srlive.pipeline.store_writer.StoreWriterThread`) through a FIFO (lossless: a set
  holds its slot until it is stored; if the writer falls behind, the engine waits for a slot
  while the camera keeps filling the core's buffer). The same thread stores SR images and
  "skipped" rows, and measures each set (signal, bleaching, SNR: :attr:`PipelineEvents.metrics`).
* Sets with a reconstruction go to the **inference worker**: for a live run the newest set
  wins (``policy="latest"``: skipped sets are recorded), for a protocol every set is
  reconstructed in turn (``policy="every"``). Results are published on
  :attr:`Pipeline.events` (``result``). By default the model runs in a child process on the
  set in shared memory (:mod:`.process`: no GIL shared with the camera, engine, writer and
  GUI); ``inference="thread"`` keeps it in-process.
* The newest set is also kept as the **display preview**: a GUI pulls its own copy at its
  own rate with :meth:`Pipeline.preview`, so the camera rate never reaches the GUI thread.
* A reconstruction of a **window** of sets (fluctuation methods: ``recon.window_sets`` > 1)
  keeps the series' last ``window_sets`` sets held in the ring; each new set completes a
  window, which the worker takes whole. The first sets of a series, before a window is
  full, are recorded as not reconstructed.
"""

from __future__ import annotations

import logging
import math
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
from srlive.acquisition.writer import SeriesWriter
from srlive.pipeline.latency import LatencyTracker
from srlive.pipeline.process import InferenceProcess
from srlive.pipeline.ring import SetRing, Slot, SlotInfo
from srlive.pipeline.store_writer import StoredSet, StoreWriterThread, WriteJob
from srlive.pipeline.worker import InferenceWorker, Policy, default_threads
from srlive.recon.set_metrics import NoiseModel, SetMetrics

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
    """One reconstruction, as published to subscribers (viewer, optimizer, callbacks)."""

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
    details: dict[str, float] = field(default_factory=dict)  # e.g. localisation rate, density


@dataclass
class SkippedSet:
    """A set the inference did not reconstruct (it fell behind, or the window was filling)."""

    series: str
    t: int


@dataclass
class Preview:
    """The display's own copy of the newest set, rendered, and where it came from."""

    image: np.ndarray
    series: str
    t: int
    plan: SetPlan


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

    result = Signal(SRResult)
    skipped = Signal(SkippedSet)
    stored = Signal(StoredSet)
    metrics = Signal(SetMetrics)
    error = Signal(str)  # one line
    write_failed = Signal(str)  # the first failed store write (one line): stop acquiring


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
        policy: Policy = "latest",
        metrics_interval_s: float = 0.25,
        metrics_for: Callable[[str], object] | None = None,
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
        self.ring = SetRing(slots, max_frames, frame_shape, shared=inference == "process")
        self.ring_mb = round(self.ring.nbytes / 2**20, 2)
        self.clock_origin = clock_origin
        self.keep_raw_sum = keep_raw_sum
        self.events = PipelineEvents()
        self.stats = PipelineStats()
        self.latency = LatencyTracker(window)
        self.threads = default_threads() if threads is None else threads
        self._filling: Slot | None = None
        self._windows: dict[str, deque[Slot]] = {}  # series -> its last sets (held)
        self._windows_lock = threading.Lock()
        self._preview: Slot | None = None
        self._preview_lock = threading.Lock()
        self.metrics_for = metrics_for  # series measured (None: all) while someone listens
        self.store = StoreWriterThread(
            writer,
            self.ring,
            self.stats,
            noise or NoiseModel(offset_adu=writer.offset_adu),
            on_stored=self.events.stored.emit,
            on_metrics=self.events.metrics.emit,
            wants_metrics=self._wants_metrics,
            on_failed=self._write_failed,
            metrics_interval_s=metrics_interval_s,
            pin=self.pin_cpus,
        )
        self._proc: InferenceProcess | None = None
        self._proc_lock = threading.Lock()
        self._proc_closed = False
        self.worker = InferenceWorker(
            self._reconstruct,
            self._on_result,
            self._on_skipped,
            self._on_error,
            threads=self.threads if inference == "thread" else None,
            policy=policy,
        )
        self._closed = False

    @property
    def metrics_interval_s(self) -> float:
        """Sets measured at most this often (0: every set)."""
        return self.store.metrics_interval_s

    @metrics_interval_s.setter
    def metrics_interval_s(self, value: float) -> None:
        self.store.metrics_interval_s = value

    def _wants_metrics(self, series: str) -> bool:
        listening = bool(len(self.events.metrics))
        return listening and (self.metrics_for is None or self.metrics_for(series) is not None)

    @property
    def write_error(self) -> str | None:
        """The first failed store write (None: every write so far succeeded)."""
        return self.store.error

    def _write_failed(self, message: str) -> None:
        self.events.error.emit(message)
        self.events.write_failed.emit(message)

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

    # --- the runner's set_complete subscriber ----------------------------------------
    def on_set_complete(
        self,
        plan: SetPlan,
        frames: np.ndarray,
        metas: list[dict[str, Any]],
        series: str,
        reconstruction: str | None,
        dose: tuple[float, float | None] = (math.nan, None),
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
        slot.info = SlotInfo(series, t, state, stamps, dose)
        self.stats.sets_in += 1
        self.stats.frames_in += len(frames)
        reconstruct = state.recon is not None
        window_sets = int(getattr(state.recon, "window_sets", 1))
        # writer, preview, (inference), (the series' window)
        self.ring.retain(slot, 2 + int(reconstruct) + int(window_sets > 1))
        self.store.put(WriteJob("raw", state, t, slot=slot))
        self._set_preview(slot)
        self.ring.release(slot)  # the producer's hold
        if not reconstruct:
            return
        if window_sets > 1:
            window = self._add_to_window(series, slot, window_sets)
            if window is None:
                self._on_skipped(slot)  # no full window yet
                return
            slot.info.window, slot.info.window_sets = window, len(window)
        self.worker.offer(slot, keep=bool(getattr(state.recon, "every_set", False)))

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
        info = slot.about
        window, info.window = info.window or [], None
        for older in window[:-1]:
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

    def preview(self, render: Callable[[np.ndarray], np.ndarray]) -> Preview | None:
        """``render(frames)`` of the newest set not yet previewed, or None (any thread).

        ``render`` must return its own array (a copy): the slot is released right after.
        """
        with self._preview_lock:
            slot, self._preview = self._preview, None
        if slot is None:
            return None
        try:
            image = render(slot.frames)
            assert slot.plan is not None
            shown = Preview(image, slot.about.series, slot.about.t, slot.plan)
        finally:
            self.ring.release(slot)
        return shown

    def mark_displayed(self, result: SRResult) -> None:
        """The viewer showed ``result``: adds the display stage to the latency figures."""
        if "displayed" not in result.stamps:
            result.stamps["displayed"] = time.perf_counter()
            self.latency.record_display(result.stamps)

    # --- inference side (worker thread) -------------------------------------------------
    def _reconstruct(self, slot: Slot) -> tuple[np.ndarray, float, np.ndarray | None]:
        """The SR image, its confidence and (learned models) its expected error map."""
        info = slot.about
        recon = info.state.recon
        assert recon is not None
        window = info.window
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
        info = slot.about
        t, stamps, n_window = info.t, info.stamps, info.window_sets
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
        if n_window:
            meta.update(window_first_t=t - n_window + 1, window_frames=n_window * slot.n_frames)
        recon = info.state.recon
        if (sr_row := getattr(recon, "sr_row", None)) is not None:
            meta.update(sr_row())  # the set just reconstructed (the worker is in order)
        details_of = getattr(recon, "details", None)
        details = details_of() if details_of is not None else {}
        image = np.asarray(image, np.float32)
        self.store.put(WriteJob("sr", info.state, t, image=image, meta=meta, error=error))
        assert slot.plan is not None
        self.events.result.emit(
            SRResult(
                info.series,
                t,
                slot.plan,
                image,
                float(confidence),
                recon_ms,
                stamps,
                latency,
                raw_sum,
                error,
                details,
            )
        )

    def _on_skipped(self, slot: Slot) -> None:
        info = slot.about
        meta = {"time_s": slot.metas[-1].get("time_s") if slot.metas else None}
        self._release_window(slot)
        self.ring.release(slot)
        self.stats.sr_skipped += 1
        self.store.put(WriteJob("skip", info.state, info.t, meta=meta))
        self.events.skipped.emit(SkippedSet(info.series, info.t))

    def _on_error(self, slot: Slot, exc: BaseException) -> None:
        self.stats.sr_errors += 1
        self._on_skipped(slot)  # recorded as not reconstructed
        self.events.error.emit(f"reconstruction failed: {exc}")

    # --- shutdown -----------------------------------------------------------------------
    def close(self, drain: bool = True) -> None:
        """Finish inference (``drain``: the waiting sets too), store everything, free threads."""
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
        self.store.close()
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
