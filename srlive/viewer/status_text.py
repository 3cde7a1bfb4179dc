"""The live window's text: the status line of a shown set, and the rates and latency line."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# info keys shown first, with their labels; other keys follow as "key=value"
_INFO_LABELS: dict[str, str] = {
    "frame": "frame",
    "sets": "sets",
    "sr_fps": "SR fps",
    "latency_ms": "latency ms",
    "dropped": "dropped",
    "method": "method",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"{number:.1f}" if abs(number) < 1e5 else f"{number:.3g}"
    return str(value)


def format_info(info: Mapping[str, Any]) -> str:
    """One status-bar line from an ``info`` dict (``info["status"]`` goes last)."""
    parts = [f"{label} {_fmt(info[k])}" for k, label in _INFO_LABELS.items() if k in info]
    parts += [f"{k}={_fmt(v)}" for k, v in info.items() if k not in _INFO_LABELS and k != "status"]
    if info.get("status"):
        parts.append(str(info["status"]))
    return "  |  ".join(parts)


def _ms(value: Any) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.0f}"


def format_stats(
    stats: Mapping[str, Any], last: tuple[float, Mapping[str, Any]] | None, now: float
) -> str:
    """Raw and SR rates (from the previous stats), latency p50/p99, skipped and stored."""
    parts = []
    if last is not None and now > last[0]:
        dt = now - last[0]
        fps = (stats.get("frames", 0) - last[1].get("frames", 0)) / dt
        sr = (stats.get("sr", 0) - last[1].get("sr", 0)) / dt
        parts.append(f"raw {fps:.1f} fps  SR {sr:.2f}/s")
    p50 = stats.get("to_display_p50_ms") or stats.get("to_result_p50_ms")
    p99 = stats.get("to_display_p99_ms") or stats.get("to_result_p99_ms")
    parts.append(f"latency p50 {_ms(p50)} ms  p99 {_ms(p99)} ms")
    parts.append(f"skipped {stats.get('skipped', 0)}")
    parts.append(f"stored {stats.get('stored', 0)}/{stats.get('frames', 0)} frames")
    return "  |  ".join(parts)
