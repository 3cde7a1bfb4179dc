"""Command-line options of the fluctuation methods (eSRRF, SOFI), shared by `run` and
`reconstruct`: one definition of the flags and one way from flags to settings."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI starts without numpy/scipy; the settings come when used
    from srlive.recon.fluctuation.method import FluctuationSettings

# FluctuationSettings' defaults, for the help text (a test keeps them equal)
HELP_DEFAULTS = {
    "window": 100,
    "step": 20,
    "magnification": 4,
    "radius": 1.5,
    "sensitivity": 1.0,
    "temporal": "AVG",
}

# flag -> FluctuationSettings field (None: the flag was not given, the default applies)
FLUCTUATION_FLAGS = (
    "window",
    "step",
    "magnification",
    "radius",
    "sensitivity",
    "temporal",
    "balanced",
    "macro_pixel_correction",
)


def add_fluctuation_options(
    parser: argparse.ArgumentParser, window_help: str | None = None, step_help: str | None = None
) -> None:
    """The ``fluctuation (esrrf, sofi2-4)`` argument group (``*_help``: another default)."""
    group = parser.add_argument_group("fluctuation (esrrf, sofi2, sofi3, sofi4)")
    d = HELP_DEFAULTS
    group.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help=window_help or f"frames per reconstructed window (default {d['window']})",
    )
    group.add_argument(
        "--step",
        type=int,
        default=None,
        metavar="N",
        help=step_help
        or f"frames between windows, the size of a stored set (default {d['step']}); "
        "the window must be a multiple of it",
    )
    group.add_argument(
        "--magnification",
        type=int,
        default=None,
        metavar="M",
        help=f"eSRRF fine pixels per camera pixel (default {d['magnification']})",
    )
    group.add_argument(
        "--radius",
        type=float,
        default=None,
        metavar="PX",
        help=f"eSRRF ring radius in camera pixels (default {d['radius']:g})",
    )
    group.add_argument(
        "--sensitivity",
        type=float,
        default=None,
        metavar="S",
        help=f"eSRRF sensitivity (default {d['sensitivity']:g})",
    )
    group.add_argument(
        "--temporal",
        choices=["AVG", "VAR", "TAC2"],
        default=None,
        help=f"eSRRF temporal analysis (default {d['temporal']})",
    )
    group.add_argument(
        "--balanced", action="store_const", const=True, default=None, help="balanced SOFI"
    )
    group.add_argument(
        "--no-macro-pixel-correction",
        dest="macro_pixel_correction",
        action="store_const",
        const=False,
        default=None,
        help="eSRRF without the macro-pixel correction",
    )


def given_fluctuation_flags(args: argparse.Namespace) -> list[str]:
    """The fluctuation flags given on the command line (as ``--flag``)."""
    return [
        "--" + name.replace("_", "-")
        if name != "macro_pixel_correction"
        else "--no-macro-pixel-correction"
        for name in FLUCTUATION_FLAGS
        if getattr(args, name, None) is not None
    ]


def fluctuation_from_args(args: argparse.Namespace, method: str) -> FluctuationSettings:
    """``method``'s settings from the flags given (one-line ValueError for bad values)."""
    from srlive.recon.fluctuation.method import fluctuation_settings

    return fluctuation_settings(method, **{n: getattr(args, n, None) for n in FLUCTUATION_FLAGS})
