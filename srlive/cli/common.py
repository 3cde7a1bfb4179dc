"""What the commands share: one-line usage errors, microscope options, set options."""

from __future__ import annotations

import argparse
from typing import Any


class UsageError(ValueError):
    """Bad command-line input."""


def parse_set(text: str) -> tuple[str, str, str]:
    """Parse ``LABEL.PROPERTY=VALUE``."""
    key, sep, value = text.partition("=")
    label, dot, prop = key.partition(".")
    if not sep or not dot or not label or not prop:
        raise argparse.ArgumentTypeError(f"expected LABEL.PROPERTY=VALUE, got {text!r}")
    return label.strip(), prop.strip(), value.strip()


def add_microscope_options(parser: argparse.ArgumentParser) -> None:
    """--profile and --set, shared by the commands that drive a microscope."""
    parser.add_argument(
        "--profile", default=None, help="profile name or path (default: sim_default)"
    )
    parser.add_argument(
        "--set",
        dest="properties",
        action="append",
        type=parse_set,
        default=[],
        metavar="LABEL.PROPERTY=VALUE",
        help="any Micro-Manager property, applied first (repeatable)",
    )


PRECISION_ARG: dict[str, Any] = {
    "choices": ["auto", "fp32", "bf16", "fp16"],
    "default": "auto",
    "help": "learned models' compute precision (auto: bf16 on CPUs with bf16 units, fp16 on "
    "CUDA, else fp32)",
}
