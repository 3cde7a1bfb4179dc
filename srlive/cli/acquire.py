"""``srlive acquire``: run an automated imaging protocol, unattended and safely."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from srlive.cli.common import add_microscope_options


def add_parser(sub: Any) -> None:
    acq = sub.add_parser("acquire", help="run an automated imaging protocol (YAML/JSON)")
    acq.add_argument("protocol", type=Path, help="protocol file (useq MDASequence + srlive)")
    add_microscope_options(acq)
    acq.add_argument("--out", type=Path, default=None, help="output .zarr")
    acq.add_argument("--overwrite", action="store_true", help="replace an existing store")
    acq.add_argument(
        "--software-timing",
        action="store_true",
        help="no hardware sequencing (SLM image + snap per frame)",
    )
    acq.add_argument("--json", action="store_true", help="print a JSON summary last")


def cmd(args: argparse.Namespace) -> int:
    from srlive.hardware.safety import graceful_stop
    from srlive.pipeline.run_protocol import acquire

    with graceful_stop(threading.Event()) as stop:
        summary = acquire(
            args.protocol,
            profile=args.profile,
            out=args.out,
            overwrite=args.overwrite,
            hardware_sequencing=False if args.software_timing else None,
            properties=args.properties,
            stop=stop,
        )
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(
            f"{summary.sets_completed}/{summary.sets_planned} sets, "
            f"{summary.raw_frames_stored}/{summary.raw_frames_acquired} raw frames stored "
            f"in {len(summary.series)} series -> {summary.output}"
        )
    if summary.error and summary.error != "interrupted":
        print(f"srlive: error: {summary.error}", file=sys.stderr)
        return 3
    return 130 if summary.interrupted else 0
