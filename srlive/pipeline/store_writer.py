"""The pipeline's store writer thread: every raw set, SR image and skipped row, in order.

Jobs arrive through a FIFO (lossless: a raw set holds its ring slot until it is stored). The
same thread measures each stored set (:class:`~srlive.pipeline.signal_tracker.SignalTracker`)
for the live window and the optimizer. The first failed write ends storing: later raw sets
are counted as write errors and ``on_failed`` tells the runner to stop lighting the sample.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from srlive.acquisition.writer import SeriesState, SeriesWriter
from srlive.pipeline.cpus import pin_current_thread
from srlive.pipeline.ring import SetRing, Slot
from srlive.pipeline.signal_tracker import SignalTracker
from srlive.recon.set_metrics import NoiseModel, SetMetrics


@dataclass
class WriteJob:
    """One thing to store: a raw set (in its ring slot), an SR image, or a skipped set."""

    kind: Literal["raw", "sr", "skip"]
    state: SeriesState
    t: int
    slot: Slot | None = None
    image: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: np.ndarray | None = None  # the SR image's expected error map


@dataclass
class StoredSet:
    """A raw set now in its store."""

    series: str
    t: int
    frames: int


log = logging.getLogger(__name__)


class StoreWriterThread:
    """Stores jobs in order on its own thread; measures the stored sets."""

    def __init__(
        self,
        writer: SeriesWriter,
        ring: SetRing,
        stats: Any,
        noise: NoiseModel,
        *,
        on_stored: Callable[[StoredSet], None],
        on_metrics: Callable[[SetMetrics], None],
        wants_metrics: Callable[[str], bool],
        on_failed: Callable[[str], None],
        metrics_interval_s: float = 0.25,
        pin: bool = False,
    ) -> None:
        self.writer, self.ring, self.stats, self.noise = writer, ring, stats, noise
        self.on_stored, self.on_metrics, self.on_failed = on_stored, on_metrics, on_failed
        self.wants_metrics = wants_metrics  # measure this series' sets (someone listens)
        self.metrics_interval_s = metrics_interval_s
        self.pin = pin
        self.error: str | None = None  # the first failed write
        self._trackers: dict[str, SignalTracker] = {}
        self._last_metrics = -math.inf
        self._jobs: queue.SimpleQueue[WriteJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="srlive-store-writer", daemon=True)
        self._thread.start()

    def put(self, job: WriteJob) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        """Store what is queued, then end the thread."""
        self._jobs.put(None)
        self._thread.join()

    def tracker(self, series: str) -> SignalTracker:
        if series not in self._trackers:
            self._trackers[series] = SignalTracker(self.noise)
        return self._trackers[series]

    def _loop(self) -> None:
        if self.pin:
            pin_current_thread("acquisition")
        while (job := self._jobs.get()) is not None:
            try:
                if self.error is None:
                    self._write(job)
                elif job.kind == "raw":  # after a failed write nothing more is stored
                    self.stats.raw_write_errors += 1
            except Exception as exc:
                if job.kind == "raw":
                    self.stats.raw_write_errors += 1
                self._failed(exc)
            finally:
                if job.slot is not None:
                    self.ring.release(job.slot)

    def _failed(self, exc: Exception) -> None:
        """The first failed write ends storing; the runner stops acquiring on ``on_failed``."""
        if self.error is not None:
            return
        self.error = f"store write failed: {exc}"
        log.info("%s", self.error, exc_info=exc)  # the command reports it in one line
        self.on_failed(self.error)

    def _write(self, job: WriteJob) -> None:
        name = job.state.name
        if job.kind == "raw":
            slot = job.slot
            assert slot is not None and slot.plan is not None
            self.writer.write_raw(job.state, job.t, slot.plan, slot.frames, slot.metas)
            self.stats.raw_sets_stored += 1
            self.stats.raw_frames_stored += slot.n_frames
            self._notify(self.on_stored, StoredSet(name, job.t, slot.n_frames))
            self._measure(job, slot)
        elif job.kind == "sr":
            assert job.image is not None
            self.writer.write_sr(job.state, job.t, job.image, job.meta, job.error)
            self.tracker(name).confidence = job.meta["confidence"]
        elif job.state.store.sr_method is not None:
            self.writer.write_skipped(job.state, job.t, job.meta)

    def _measure(self, job: WriteJob, slot: Slot) -> None:
        name = job.state.name
        if not self.wants_metrics(name):
            return
        now = time.perf_counter()
        if now - self._last_metrics < self.metrics_interval_s:
            return  # a display-rate worth of sets was already measured
        self._last_metrics = now
        plan = slot.plan
        assert plan is not None
        metrics = self.tracker(name).update(
            name,
            plan.modality.name,
            job.t,
            float(slot.metas[-1].get("time_s", math.nan)),
            slot.frames,
            plan.power_mw,
            plan.exposure_ms,
            slot.about.dose,
        )
        self._notify(self.on_metrics, metrics)

    @staticmethod
    def _notify(callback: Callable[[Any], None], value: Any) -> None:
        """Tell subscribers; one that fails is logged, never taken for a failed write."""
        try:
            callback(value)
        except Exception:
            log.exception("a subscriber failed on %s", type(value).__name__)
