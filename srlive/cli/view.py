"""``srlive view``: browse a saved acquisition."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    view = sub.add_parser("view", help="browse a saved acquisition (raw and SR over time)")
    view.add_argument("store", type=Path, help="an srlive OME-Zarr store (run or protocol)")
    view.add_argument("--series", default=None, help="series to show first")
    view.add_argument("--t", type=int, default=0, help="set to show first")
    view.add_argument(
        "--snapshot", type=Path, default=None, metavar="PNG", help="save a PNG instead of showing"
    )


def cmd(args: argparse.Namespace) -> int:
    from srlive.viewer.browse import view_store

    shot = view_store(args.store, series=args.series, t=args.t, snapshot=args.snapshot)
    if shot is not None:
        print(shot)
    return 0
