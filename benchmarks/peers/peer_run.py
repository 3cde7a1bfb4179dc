"""What every peer's ``run_peer.py`` does the same way: the one-line errors and their exit
codes, running the peer on each input with its images saved, and the summary written.

Each ``run_peer.py`` runs in its peer's own environment, where neither srlive nor this
repository is installed, so it imports this file from its parent folder by path. Only the
standard library and numpy (every peer's environment has it) are used here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = ["PeerError", "PeerFailed", "report_errors", "run_each", "write_summary"]

Item = TypeVar("Item")


class PeerError(Exception):
    """Bad input or a peer that cannot be loaded: reported as one line, exit 2."""


class PeerFailed(Exception):
    """The peer's own failure on one input (not bad input): reported as one line, exit 3."""


def run_each(
    items: Iterable[tuple[int, Item]],
    run_one: Callable[[Item], tuple[np.ndarray, dict[str, Any]]],
    out_dir: Path,
    what: str,
    key: str,
) -> list[dict[str, Any]]:
    """The peer on each ``(index, input)``: its image saved as ``out_dir/sr_{index}.npy``,
    its record returned with ``key`` (the index) and ``sr_path``. PeerFailed names the
    ``what`` (``set``, ``window``) that failed."""
    records = []
    for i, item in items:
        try:
            sr, record = run_one(item)
        except Exception as exc:  # the peer's own failure, not bad input
            raise PeerFailed(f"{what} {i}: peer failed: {type(exc).__name__}: {exc}") from exc
        np.save(out_dir / f"sr_{i}.npy", sr)
        records.append({key: i, "sr_path": f"sr_{i}.npy", **record})
    return records


def report_errors(body: Callable[[], int]) -> int:
    """``body()``'s exit code, or one line on stderr and 2 (PeerError) or 3 (PeerFailed)."""
    try:
        return body()
    except PeerError as exc:
        print(f"run_peer: error: {exc}", file=sys.stderr)
        return 2
    except PeerFailed as exc:
        print(f"run_peer: error: {exc}", file=sys.stderr)
        return 3


def write_summary(summary: dict[str, Any], out_dir: Path) -> int:
    """The summary as ``out_dir/summary.json`` and on stdout; exit code 0."""
    text = json.dumps(summary, indent=2)
    (out_dir / "summary.json").write_text(text + "\n")
    print(text)
    return 0
