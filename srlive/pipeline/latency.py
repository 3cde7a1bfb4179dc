"""Latency accounting per set: exposure end → set complete → inference start → result ready
→ displayed, with rolling percentiles that can be read live from any thread.

All stamps are ``time.perf_counter()`` seconds. ``exposure_end`` comes from the engine's
``exposure_end_s`` frame metadata of the set's last frame (the core's camera time stamp of
that frame when the camera ran a sequence; the engine's frame stamp under software timing).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

STAGES = ("exposure_end", "set_complete", "inference_start", "result_ready", "displayed")
# the intervals reported, as (name, from stage, to stage)
INTERVALS = (
    ("complete", "exposure_end", "set_complete"),
    ("queue", "set_complete", "inference_start"),
    ("inference", "inference_start", "result_ready"),
    ("display", "result_ready", "displayed"),
    ("to_result", "exposure_end", "result_ready"),
    ("to_display", "exposure_end", "displayed"),
)


def intervals_ms(stamps: Mapping[str, float]) -> dict[str, float]:
    """The intervals (ms) that ``stamps`` has both ends of; checks they are in order."""
    out: dict[str, float] = {}
    for name, start, end in INTERVALS:
        if start in stamps and end in stamps:
            out[name] = (stamps[end] - stamps[start]) * 1000.0
    return out


def ordered(stamps: Mapping[str, float]) -> bool:
    """True if the stamps present follow the pipeline's stage order."""
    values = [stamps[s] for s in STAGES if s in stamps]
    return all(b >= a for a, b in itertools.pairwise(values))


class RollingPercentiles:
    """The last ``window`` values of a quantity, with percentiles on demand."""

    def __init__(self, window: int = 200) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, value: float) -> None:
        self.values.append(float(value))
        self.count += 1

    def percentile(self, q: float) -> float | None:
        if not self.values:
            return None
        return float(np.percentile(np.fromiter(self.values, float, len(self.values)), q))

    def summary(self) -> dict[str, float | int | None]:
        if not self.values:
            return {"n": 0, "p50": None, "p99": None, "max": None}
        arr = np.fromiter(self.values, float, len(self.values))
        p50, p99 = np.percentile(arr, [50, 99])
        return {
            "n": len(arr),
            "p50": round(float(p50), 3),
            "p99": round(float(p99), 3),
            "max": round(float(arr.max()), 3),
        }


class LatencyTracker:
    """Rolling percentiles of every interval, fed as sets pass the stages (thread-safe)."""

    def __init__(self, window: int = 200, names: Iterable[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.window = window
        self.series = {n: RollingPercentiles(window) for n in (names or [i[0] for i in INTERVALS])}
        self.out_of_order = 0

    def record(self, stamps: Mapping[str, float]) -> dict[str, float]:
        """Add one set's intervals; returns them (ms)."""
        values = intervals_ms(stamps)
        with self._lock:
            if not ordered(stamps):
                self.out_of_order += 1
            for name, value in values.items():
                if name in self.series:
                    self.series[name].add(value)
        return values

    def record_display(self, stamps: Mapping[str, float]) -> None:
        """Add only the display intervals of a set whose other intervals were recorded."""
        values = intervals_ms(stamps)
        with self._lock:
            for name in ("display", "to_display"):
                if name in values:
                    self.series[name].add(values[name])

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        with self._lock:
            return {name: s.summary() for name, s in self.series.items()}

    def live(self) -> dict[str, float | None]:
        """The figures a live display shows: p50/p99 of exposure end → result (and display)."""
        with self._lock:
            out: dict[str, float | None] = {}
            for name in ("to_result", "to_display", "inference"):
                s = self.series[name]
                out[f"{name}_p50_ms"] = s.percentile(50)
                out[f"{name}_p99_ms"] = s.percentile(99)
            return out
