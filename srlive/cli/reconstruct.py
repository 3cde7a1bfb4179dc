"""``srlive reconstruct``: stored acquisitions and raw files, in one process or on Dask."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from srlive.cli.common import UsageError
from srlive.cli.smlm import (
    SIM_PATTERN_OPTIONS,
    add_smlm_options,
    given_smlm_flags,
    reconstruct_smlm_from_args,
)
from srlive.recon.fluctuation.options import add_fluctuation_options, given_fluctuation_flags

# reconstruct's window and step default to its input (srlive.recon.offline_fluctuation)
RECONSTRUCT_WINDOW_HELP = {
    "window_help": "frames per SR image (default: a store's set size; a raw file's frames, at "
    "most 100)",
    "step_help": "frames between SR images, the output's set size (default: a store's set size "
    "when it divides the window, else the window); the window must be a multiple of it",
}

# reconstruct's optics flags: flag, metavar, help; parsed by _reconstruct_optics
RECONSTRUCT_OPTICS_FLAGS = (
    ("--pixel-nm", "NM", "camera pixel at the sample (default: the file's, else the profile's)"),
    ("--na", "NA", "numerical aperture"),
    ("--emission-nm", "NM", "emission wavelength"),
    ("--angles", "N", "pattern angles per set"),
    ("--phases", "N", "phases per angle"),
    ("--order", "ORDER", "frame order in the file: angle-major (default) | phase-major"),
    ("--offset-adu", "ADU", "camera offset"),
    ("--pattern-period-nm", "NM", "nominal fringe period (narrows the search; fallback)"),
    ("--pattern-angles-deg", "A,B,C", "nominal fringe angles (a leading minus: --x=-5,55,115)"),
    ("--wiener", "W", "Wiener parameter (default: from the data's noise)"),
)
_OPTICS_FIELDS: dict[str, Any] = {
    "pixel_nm": float,
    "na": float,
    "emission_nm": float,
    "angles": int,
    "phases": int,
    "order": str,
    "offset_adu": float,
    "pattern_period_nm": float,
    "pattern_angles_deg": "floats",
    "wiener": float,
}
_OPTICS_NAMES = {
    "angles": "n_angles",
    "phases": "n_phases",
    "pattern_period_nm": "period_nm",
    "pattern_angles_deg": "angles_deg",
}


def _reconstruct_optics(args: argparse.Namespace) -> dict[str, Any]:
    """The optics flags given, as SIMOptics overrides (UsageError for a value that is none)."""
    given: dict[str, Any] = {}
    for dest, kind in _OPTICS_FIELDS.items():
        text = getattr(args, dest)
        if text is None:
            continue
        flag = "--" + dest.replace("_", "-")
        try:
            if kind == "floats":
                value: Any = tuple(float(v) for v in text.split(",") if v.strip())
                if not value:
                    raise ValueError
            else:
                value = kind(text)
        except ValueError:
            what = {int: "an integer", float: "a number", "floats": "numbers A,B,C"}[kind]
            raise UsageError(f"{flag} needs {what}, got {text!r}") from None
        if dest == "order" and value not in ("angle-major", "phase-major"):
            raise UsageError(f"--order must be angle-major or phase-major, got {text!r}")
        given[_OPTICS_NAMES.get(dest, dest)] = value
    return given


def add_parser(sub: Any) -> None:
    from srlive.recon.methods import describe

    rec = sub.add_parser(
        "reconstruct",
        help="reconstruct a stored acquisition or a raw SIM file or burst (TIFF, MRC, .npy)",
    )
    rec.add_argument(
        "input",
        type=Path,
        nargs="+",
        help="srlive OME-Zarr store(s), or raw file(s) (TIFF/OME/ImageJ/MRC/.npy); several "
        "need --workers or --scheduler and write OUT/<name>.zarr each",
    )
    rec.add_argument(
        "--method",
        required=True,
        help=f"SIM: {describe(burst=False, localizes=False)} | a .safetensors model; "
        f"fluctuation bursts: {describe(burst=True)}; SMLM bursts: {describe(localizes=True)}",
    )
    rec.add_argument("--out", type=Path, required=True, help="new store, or X.tif (OME-TIFF)")
    rec.add_argument("--overwrite", action="store_true")
    rec.add_argument("--json", action="store_true", help="print a JSON summary")
    optics = rec.add_argument_group(
        "optics (default: a store's profile; a raw file: the default profile's, its pixel size)"
    )
    for flag, meta, text in RECONSTRUCT_OPTICS_FLAGS:
        optics.add_argument(flag, default=None, metavar=meta, help=text)
    optics.add_argument(
        "--optics",
        type=Path,
        default=None,
        metavar="FILE.yaml",
        help="the optics as YAML/JSON (SIMOptics fields); the flags above override it",
    )
    rec.add_argument(
        "--plot", type=Path, default=None, metavar="PNG", help="set 0's spectra and carriers"
    )
    rec.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_fluctuation_options(rec, **RECONSTRUCT_WINDOW_HELP)  # defaults from the input here
    add_smlm_options(rec)
    dist = rec.add_argument_group("distributed (Dask): resumable, the same output as one process")
    dist.add_argument(
        "--workers", type=int, default=None, metavar="N", help="a local cluster of N processes"
    )
    dist.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT", help="a running Dask scheduler"
    )


# reconstruct's options that mean nothing to the fluctuation methods (refused with them)
_SIM_ONLY_OPTIONS = (("na", "--na"), ("emission_nm", "--emission-nm"), *SIM_PATTERN_OPTIONS)


def _reconstruct_fluctuation_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The fluctuation settings given (None values: defaulted to the input), for a
    fluctuation method; None for a SIM method. UsageError for options of the other kind."""
    from srlive.recon.fluctuation.options import FLUCTUATION_FLAGS
    from srlive.recon.methods import describe, get_method

    if not get_method(args.method).burst:
        if flags := given_fluctuation_flags(args):
            methods = describe(burst=True)
            raise UsageError(f"{', '.join(flags)}: only for the fluctuation methods ({methods})")
        return None
    if args.workers is not None or args.scheduler is not None:
        raise UsageError(f"--workers/--scheduler: not supported yet for {args.method}")
    if len(args.input) > 1:
        raise UsageError(f"{args.method} reconstructs one input at a time")
    sim_only = [flag for dest, flag in _SIM_ONLY_OPTIONS if getattr(args, dest) is not None]
    if sim_only:
        raise UsageError(f"{', '.join(sim_only)}: SIM options, not used by {args.method}")
    return {name: getattr(args, name) for name in FLUCTUATION_FLAGS}


def cmd(args: argparse.Namespace) -> int:
    from srlive.recon.methods import get_method

    if get_method(args.method).localizes:
        return reconstruct_smlm_from_args(args, _reconstruct_optics(args))
    if flags := given_smlm_flags(args):
        raise UsageError(f"{', '.join(flags)}: only for --method localization")
    fluctuation = _reconstruct_fluctuation_args(args)
    if args.workers is not None or args.scheduler is not None:
        return _cmd_reconstruct_distributed(args)
    if len(args.input) > 1:
        raise UsageError("several inputs are reconstructed with --workers N or --scheduler ADDR")
    args.input = args.input[0]
    from srlive.recon.offline import reconstruct_input

    summary = reconstruct_input(
        args.input,
        args.method,
        args.out,
        optics_overrides=_reconstruct_optics(args),
        optics_file=args.optics,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        plot=args.plot,
        fluctuation=fluctuation,
    )
    for line in summary["warnings"]:
        print(f"srlive: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if fluctuation is not None:
        params = summary["parameters"]
        print(
            f"{summary['sr_images']} SR images ({args.method}, windows of {params['window']} "
            f"frames every {params['step']}, x{summary['upscale']}) -> {summary['output']}"
        )
        return 0
    line = f"{summary['sr_images']} SR images ({args.method}) -> {summary['output']}"
    if summary["pixel_nm_from"] == "file metadata":
        line += f"; pixel {summary['optics']['pixel_nm']:g} nm from the file"
    pattern = summary["sets"][0].get("summary") if summary["sets"] else None
    print(line + (f"; pattern: {pattern}" if pattern else ""))
    return 0


def _cmd_reconstruct_distributed(args: argparse.Namespace) -> int:
    from srlive.recon.distributed import reconstruct_distributed

    if args.plot is not None:
        raise UsageError("--plot is for one input without --workers/--scheduler")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    summary = reconstruct_distributed(
        args.input,
        args.method,
        args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        optics_file=args.optics,
        optics_overrides=_reconstruct_optics(args),
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    for output in summary["outputs"]:
        for line in output["warnings"]:
            print(f"srlive: warning: {output['output']}: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for output in summary["outputs"]:
        resumed = " (resumed)" if output["resumed"] else ""
        print(
            f"{output['n_sets']} sets ({args.method}, {output['reconstructed_now']} now"
            f"{resumed}) -> {output['output']}"
        )
    return 0
