"""Command-line options of single-molecule localisation (``srlive reconstruct --method
localization``): one definition of the flags, the checks, and the call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from srlive.cli.common import UsageError

# flag dest -> SMLMSettings / LocalizeSettings field (None: not given, the default applies)
SMLM_FLAGS = {
    "smlm_threshold": "threshold",
    "smlm_box": "box",
    "psf_sigma_nm": "sigma_nm",
    "fixed_sigma": "model",
    "render_nm": "render_nm",
    "render": "render",
    "drift_blocks": "drift_blocks",
    "torch_device": "device",
}
CAMERA_FLAGS = {"gain_e_per_adu": "e_per_adu", "read_noise_e": "read_noise_e"}
# reconstruct's SIM pattern options: nothing to localisation nor the fluctuation methods
SIM_PATTERN_OPTIONS = (
    ("angles", "--angles"),
    ("phases", "--phases"),
    ("order", "--order"),
    ("pattern_period_nm", "--pattern-period-nm"),
    ("pattern_angles_deg", "--pattern-angles-deg"),
    ("wiener", "--wiener"),
    ("optics", "--optics"),
    ("plot", "--plot"),
)


def add_smlm_options(parser: argparse.ArgumentParser) -> None:
    """The ``localization`` argument group of ``srlive reconstruct``."""
    group = parser.add_argument_group(
        "localization (SMLM bursts; --out a store, X.tif, X.csv or X.hdf5)"
    )
    group.add_argument(
        "--threshold",
        dest="smlm_threshold",
        type=float,
        default=None,
        metavar="SD",
        help="candidates above this many predicted noise SDs of the band-passed frame (6)",
    )
    group.add_argument(
        "--box", dest="smlm_box", type=int, default=None, metavar="PX", help="fit box (7, odd)"
    )
    group.add_argument(
        "--psf-sigma-nm",
        type=float,
        default=None,
        metavar="NM",
        help="PSF σ to start the fit from (default 0.21 λ/NA)",
    )
    group.add_argument(
        "--fixed-sigma",
        action="store_const",
        const="fixed",
        default=None,
        help="fit with the PSF σ fixed instead of free",
    )
    group.add_argument(
        "--render-nm", type=float, default=None, metavar="NM", help="rendered pixel (10 nm)"
    )
    group.add_argument(
        "--render", choices=["gaussian", "histogram"], default=None, help="rendering (gaussian)"
    )
    group.add_argument(
        "--drift-blocks",
        type=int,
        default=None,
        metavar="N",
        help="drift correction by cross-correlating N blocks of frames (default one per "
        "1000 frames when >= 2000; 0: off)",
    )
    group.add_argument(
        "--export",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="also write the localisations to FILE.csv (ThunderSTORM) or FILE.hdf5 (Picasso); "
        "repeatable",
    )
    group.add_argument(
        "--gain-e-per-adu", type=float, default=None, metavar="G", help="camera gain (e-/ADU)"
    )
    group.add_argument(
        "--read-noise-e", type=float, default=None, metavar="E", help="camera read noise (e-)"
    )
    group.add_argument(
        "--z-calibration",
        type=Path,
        default=None,
        metavar="FILE.yaml",
        help="astigmatic 3D: the σx(z), σy(z) calibration (AstigmaticCalibration as YAML/JSON)",
    )
    group.add_argument(
        "--torch-device", default=None, metavar="DEV", help="fitting device: cpu, cuda, auto"
    )


# ``srlive run --modality smlm``: flag dest -> SMLMSettings / LocalizeSettings field
LIVE_SMLM_FLAGS = {"smlm_threshold": "threshold", "render_nm": "render_nm", "render": "render"}
LIVE_RUN_FLAGS = ("set_frames", "activation_mw", "target_density")


def add_live_smlm_options(parser: argparse.ArgumentParser) -> None:
    """The ``smlm`` argument group of ``srlive run``: localisation live, density control."""
    group = parser.add_argument_group("smlm (live localisation, density control)")
    group.add_argument(
        "--set-frames",
        type=int,
        default=None,
        metavar="N",
        help="frames per stored set, localised and shown together (default 500)",
    )
    group.add_argument(
        "--activation-mw",
        type=float,
        default=None,
        metavar="MW",
        help="power of the profile's activation line (405 nm) to start with (default 0)",
    )
    group.add_argument(
        "--target-density",
        type=float,
        default=None,
        metavar="D",
        help="hold D localisations per frame per µm² by the activation power (within the "
        "profile's limit)",
    )
    group.add_argument(
        "--threshold",
        dest="smlm_threshold",
        type=float,
        default=None,
        metavar="SD",
        help="candidates above this many predicted noise SDs (6)",
    )
    group.add_argument(
        "--render-nm", type=float, default=None, metavar="NM", help="rendered pixel (10 nm)"
    )
    group.add_argument(
        "--render", choices=["gaussian", "histogram"], default=None, help="rendering (gaussian)"
    )


def live_smlm_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """RunSettings fields from ``srlive run``'s smlm flags (UsageError for bad values)."""
    from srlive.recon.smlm.method import smlm_settings

    if args.set_frames is not None and args.set_frames < 1:
        raise UsageError("--set-frames must be at least 1")
    if args.target_density is not None and not args.target_density > 0:
        raise UsageError("--target-density must be more than 0")
    try:
        settings = smlm_settings(**{f: getattr(args, d) for d, f in LIVE_SMLM_FLAGS.items()})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return {"smlm": settings, **{name: getattr(args, name) for name in LIVE_RUN_FLAGS}}


def given_live_smlm_flags(args: argparse.Namespace) -> list[str]:
    """``srlive run``'s smlm flags given on the command line (as ``--flag``)."""
    dests = [*LIVE_SMLM_FLAGS, *LIVE_RUN_FLAGS]
    names = {"smlm_threshold": "--threshold"}
    return [names.get(d, "--" + d.replace("_", "-")) for d in dests if getattr(args, d) is not None]


def given_smlm_flags(args: argparse.Namespace) -> list[str]:
    """The localisation flags given on the command line (as ``--flag``)."""
    names = {
        "smlm_threshold": "--threshold",
        "smlm_box": "--box",
        "fixed_sigma": "--fixed-sigma",
        "export": "--export",
    }
    dests = [*SMLM_FLAGS, *CAMERA_FLAGS, "export", "z_calibration"]
    given = [d for d in dests if getattr(args, d, None) is not None]
    return [names.get(d, "--" + d.replace("_", "-")) for d in given]


def load_z_calibration(path: Path) -> Any:
    """An AstigmaticCalibration from a YAML or JSON file (one-line ValueError otherwise)."""
    import yaml
    from pydantic import ValidationError

    from srlive.recon.optics import format_validation_error
    from srlive.recon.smlm.gauss import AstigmaticCalibration

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the z calibration: {exc}") from None
    try:
        return AstigmaticCalibration.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, str(path))) from None


def _check_out(out: Path, overwrite: bool, input: Path) -> None:
    """Refuse an output that may not be written (a store, a TIFF or an export file)."""
    from srlive.recon.smlm.export import export_format
    from srlive.recon.tiff_output import check_file_output, check_tiff_output, is_tiff_output
    from srlive.storage.guard import check_output

    if export_format(out) is not None:
        check_file_output(out, overwrite, [input])
    elif is_tiff_output(out):
        check_tiff_output(out, overwrite=overwrite, inputs=[input])
    else:
        check_output(out, overwrite=overwrite, inputs=[input])


def reconstruct_smlm_from_args(args: argparse.Namespace, optics: dict[str, Any]) -> int:
    """``srlive reconstruct --method localization``: checks, the run, the report (bad
    input: a one-line ValueError)."""
    from srlive.recon.fluctuation.options import given_fluctuation_flags

    if args.workers is not None or args.scheduler is not None:
        raise UsageError(f"--workers/--scheduler: not supported yet for {args.method}")
    if len(args.input) > 1:
        raise UsageError(f"{args.method} reconstructs one input at a time")
    unused = [f for d, f in SIM_PATTERN_OPTIONS if getattr(args, d, None) is not None]
    unused += given_fluctuation_flags(args)
    if unused:
        raise UsageError(f"{', '.join(unused)}: not used by {args.method}")
    from srlive.recon.offline_smlm import reconstruct_smlm
    from srlive.recon.smlm.method import smlm_settings

    given = {field: getattr(args, d) for d, field in SMLM_FLAGS.items()}
    if args.z_calibration is not None:
        given.update(model="astigmatic", astigmatism=load_z_calibration(args.z_calibration))
    settings = smlm_settings(**given)
    overrides = {**optics, **{f: getattr(args, d) for d, f in CAMERA_FLAGS.items()}}
    input_path = args.input[0]
    _check_out(args.out, args.overwrite, input_path)
    summary = reconstruct_smlm(
        input_path,
        args.out,
        settings,
        overrides,
        exports=args.export or [],
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    from srlive.recon.offline import finite_json

    summary = finite_json(summary)
    for line in summary["warnings"]:
        print(f"srlive: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    drift = summary["drift"]
    line = (
        f"{summary['localizations']} localisations in {summary['input_frames']} frames "
        f"(median precision {summary['median_uncertainty_nm'] or float('nan'):.1f} nm"
        + (f", drift up to {drift['max_drift_nm']:.0f} nm corrected" if drift else "")
        + f") -> {summary['output']}"
    )
    print(line + "".join(f", {p}" for p in summary["exports"] if p != str(args.out)))
    return 0
