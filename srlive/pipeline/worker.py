"""The inference worker: reconstructs complete sets on its own thread.

Two policies. ``"latest"`` (live runs): :meth:`InferenceWorker.offer` puts a set in a
one-place mailbox; when the worker is still busy with an earlier set, a newer offer replaces
the waiting one (latest wins: the display and the SR stream stay current when inference is
slower than the camera) and the replaced set is handed to ``on_skipped``, so every skipped
set is counted and recorded. ``"every"`` (protocols): every offered set waits its turn
(first in, first out), each holding its ring slot, so a camera faster than the
reconstruction waits for a free slot instead of losing SR images.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from srlive.pipeline.ring import Slot

log = logging.getLogger(__name__)

Reconstruct = Callable[[Slot], Any]
Policy = Literal["latest", "every"]


def default_threads() -> int:
    """Inference threads: all cores but one, which the camera and the writer need."""
    return max(1, (os.cpu_count() or 2) - 1)


def set_torch_threads(n: int | None) -> int | None:
    """Set torch's intra-op threads for the calling thread; returns the previous value."""
    if n is None:
        return None
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    return previous


class InferenceWorker:
    """A thread running ``reconstruct(slot)`` on the newest offered slot."""

    def __init__(
        self,
        reconstruct: Reconstruct,
        on_result: Callable[[Slot, Any], None],
        on_skipped: Callable[[Slot], None],
        on_error: Callable[[Slot, BaseException], None],
        *,
        threads: int | None = None,
        name: str = "srlive-inference",
        policy: Policy = "latest",
    ) -> None:
        if policy not in ("latest", "every"):
            raise ValueError(f"inference policy must be 'latest' or 'every', got {policy!r}")
        self.policy = policy
        self._reconstruct = reconstruct
        self._on_result = on_result
        self._on_skipped = on_skipped
        self._on_error = on_error
        self.threads = threads
        self._cond = threading.Condition()
        self._pending: deque[Slot] = deque()
        self._kept: deque[bool] = deque()  # per pending slot: offered with ``keep``
        self._stopping = False
        self._drain = True
        self.busy = False
        self.done = 0
        self.skipped = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, slot: Slot, keep: bool = False) -> None:
        """Queue ``slot`` (held once for the worker); with the ``latest`` policy a set still
        waiting is skipped, unless it was offered with ``keep`` (a reconstruction that must
        see every set: localisation), which always waits its turn."""
        replaced: Slot | None = None
        with self._cond:
            if self._stopping:
                replaced = slot
            else:
                if self.policy == "latest" and self._pending and not self._kept[-1]:
                    replaced = self._pending.pop()
                    self._kept.pop()
                self._pending.append(slot)
                self._kept.append(keep)
                self._cond.notify()
        if replaced is not None:
            self.skipped += 1
            self._on_skipped(replaced)

    def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Finish (``drain``: also reconstruct the set still waiting) and end the thread."""
        with self._cond:
            self._stopping, self._drain = True, drain
            self._cond.notify()
        self._thread.join(timeout)

    @property
    def pending(self) -> bool:
        """A set is waiting for the worker."""
        return bool(self._pending)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _take(self) -> Slot | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._pending) or self._stopping)
            skipped: list[Slot] = []
            if self._stopping and not self._drain:
                skipped, slot = list(self._pending), None
                self._pending.clear()
                self._kept.clear()
            else:
                slot = self._pending.popleft() if self._pending else None
                if slot is not None:
                    self._kept.popleft()
            self.busy = slot is not None
        self.skipped += len(skipped)
        for each in skipped:
            self._on_skipped(each)
        return slot

    def _run(self) -> None:
        previous = set_torch_threads(self.threads)
        try:
            while True:
                slot = self._take()
                if slot is None:
                    return
                stamps = slot.about.stamps
                stamps["inference_start"] = time.perf_counter()
                try:
                    result = self._reconstruct(slot)
                except Exception as exc:  # report and go on with the next set
                    self.errors += 1
                    log.exception("reconstruction of set %s failed", slot.about.t)
                    self._on_error(slot, exc)
                else:
                    stamps["result_ready"] = time.perf_counter()
                    self.done += 1
                    self._on_result(slot, result)
                finally:
                    self.busy = False
        finally:
            set_torch_threads(previous)
