"""The one optimizer driver: observes every set off the acquisition thread, proposes settings.

The pipeline's writer thread measures each set (:class:`~srlive.recon.set_metrics.SetMetrics`)
and hands it to :meth:`OptimizerDriver.offer` (a queue put); SR images arrive through
:meth:`~OptimizerDriver.add_sr`. On its own thread the driver lets the series' advisor
(:mod:`srlive.optimize.advisors`) observe the sets, asks it for the next setting when the
plan source is ready for one, and delivers the decision (a live session applies it at the
next set boundary; a protocol's plans wait for it). Every few seconds it persists the
decisions so far into the store (a crash keeps them); the run writes them again at its end.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from srlive.optimize.advisors import Advisor, SRSample
from srlive.optimize.decision import Decision
from srlive.recon.set_metrics import SetMetrics

log = logging.getLogger(__name__)

PERSIST_INTERVAL_S = 2.0
SR_KEPT = 64  # SR images waiting for their set's metrics (older ones are dropped)


class OptimizerDriver:
    """Runs advisors on one thread (``srlive-optimizer``) for every offered set."""

    def __init__(
        self,
        advisor_for: Callable[[str], Advisor | None],
        deliver: Callable[[Decision], None],
        *,
        ready: Callable[[str], bool] = lambda series: True,
        persist: Callable[[], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        warm_up: tuple[Advisor, ...] = (),
    ) -> None:
        self.advisor_for = advisor_for
        self.deliver = deliver
        self.ready = ready
        self.persist = persist
        self.on_error = on_error
        self._cond = threading.Condition()
        self._metrics: list[SetMetrics] = []
        self._sr: dict[tuple[str, int], SRSample] = {}
        self._stopping = False
        self._persisted = -math.inf
        self.decisions = 0
        self._warm = warm_up
        self._thread = threading.Thread(target=self._run, name="srlive-optimizer", daemon=True)
        self._thread.start()

    def offer(self, metrics: SetMetrics) -> None:
        """A measured set (any thread; no work here)."""
        with self._cond:
            self._metrics.append(metrics)
            self._cond.notify()

    def add_sr(self, series: str, t: int, image: object, confidence: float) -> None:
        """The SR image of set ``t`` of ``series``, whenever it is ready."""
        with self._cond:
            self._sr[(series, t)] = SRSample(image, confidence)  # type: ignore[arg-type]
            while len(self._sr) > SR_KEPT:
                self._sr.pop(next(iter(self._sr)))

    def stop(self, timeout: float | None = None) -> None:
        """Finish the sets offered so far and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _error(self, message: str) -> None:
        log.warning("%s", message)
        if self.on_error is not None:
            self.on_error(message)

    def _run(self) -> None:
        for advisor in self._warm:
            try:
                advisor.warm_up()
            except Exception as exc:  # the first decision will show the same error
                self._error(f"optimizer warm-up: {exc}")
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._metrics or self._stopping)
                batch, self._metrics = self._metrics, []
                stopping = self._stopping
            latest: dict[str, SetMetrics] = {}
            start = time.perf_counter()
            for metrics in batch:
                observer = self.advisor_for(metrics.series)
                if observer is None:
                    continue
                with self._cond:
                    sr = self._sr.pop((metrics.series, metrics.t), None)
                try:
                    observer.observe(metrics, sr)
                    latest[metrics.series] = metrics
                except Exception as exc:  # a failed observation must never stop acquiring
                    self._failed(observer, metrics, exc)
            for series, metrics in latest.items():
                self._propose(series, metrics, start)
            self._maybe_persist()
            if stopping and not self._metrics:
                return

    def _propose(self, series: str, metrics: SetMetrics, start: float) -> None:
        advisor = self.advisor_for(series)
        if advisor is None or not self.ready(series):
            return  # one decision per set boundary: the last one is not applied yet
        try:
            decision = advisor.propose(metrics)
        except Exception as exc:
            self._failed(advisor, metrics, exc)
            return
        if decision is None:
            return
        decision.details["total_ms"] = (time.perf_counter() - start) * 1000.0
        decision.details["thread"] = threading.current_thread().name
        self.decisions += 1
        try:
            self.deliver(decision)
        except Exception as exc:
            self._error(f"optimizer decision not delivered: {exc}")

    def _failed(self, advisor: Advisor, metrics: SetMetrics, exc: Exception) -> None:
        log.warning("optimizer %s: set %d failed: %s", metrics.series, metrics.t, exc)
        errors = getattr(advisor, "errors", None)
        if isinstance(errors, list):
            errors.append(f"t={metrics.t}: {exc}")
        self._error(f"optimizer: {exc}")

    def _maybe_persist(self) -> None:
        """The decisions so far into the store every few seconds (a crash keeps them)."""
        now = time.perf_counter()
        if self.persist is None or now - self._persisted < PERSIST_INTERVAL_S:
            return
        self._persisted = now
        try:
            self.persist()
        except Exception as exc:  # written again when the run ends
            self._error(f"optimizer decisions not stored yet: {exc}")
