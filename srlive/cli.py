"""The `srlive` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srlive import __version__
from srlive.cli_fluctuation import (
    add_fluctuation_options,
    fluctuation_from_args,
    given_fluctuation_flags,
)
from srlive.cli_train import add_train_parser, cmd_train

log = logging.getLogger("srlive")


class UsageError(ValueError):
    """Bad command-line input."""


def _parse_set(text: str) -> tuple[str, str, str]:
    """Parse ``LABEL.PROPERTY=VALUE``."""
    key, sep, value = text.partition("=")
    label, dot, prop = key.partition(".")
    if not sep or not dot or not label or not prop:
        raise argparse.ArgumentTypeError(f"expected LABEL.PROPERTY=VALUE, got {text!r}")
    return label.strip(), prop.strip(), value.strip()


def _add_microscope_options(parser: argparse.ArgumentParser) -> None:
    """--profile and --set, shared by the commands that drive a microscope."""
    parser.add_argument(
        "--profile", default=None, help="profile name or path (default: sim_default)"
    )
    parser.add_argument(
        "--set",
        dest="properties",
        action="append",
        type=_parse_set,
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


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srlive", description="Live super-resolution microscopy through Micro-Manager."
    )
    parser.add_argument("--version", action="version", version=f"srlive {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="live super-resolution run (default: simulated microscope)")
    _add_microscope_options(run)
    run.add_argument(
        "--modality", default="sim9", help="widefield | sim9 | sim3 | sim15 | fluctuation | smlm"
    )
    run.add_argument("--frames", type=int, default=20, help="number of SR images (sets)")
    run.add_argument("--exposure-ms", type=float, default=None)
    run.add_argument("--power-mw", type=float, default=None)
    run.add_argument("--line", type=int, default=None, help="laser line in nm")
    run.add_argument("--out", type=Path, default=None, help="output .zarr (default: runs/...)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing store")
    run.add_argument("--headless", action="store_true", help="no window")
    run.add_argument(
        "--optimize",
        action="store_true",
        help="the learned optimizer sets power and exposure (sim9/sim3; a toggle in the window)",
    )
    run.add_argument(
        "--goal",
        default="min-dose-at-quality",
        choices=["min-dose-at-quality", "quality-within-budget", "max-rate-at-quality"],
        help="optimizer goal",
    )
    run.add_argument(
        "--target-quality", type=float, default=None, help="optimizer: SSIM to aim at (0-1)"
    )
    run.add_argument(
        "--close-when-done",
        action="store_true",
        help="close the window after the sets (default: it stays open for Start/Snap)",
    )
    run.add_argument("--json", action="store_true", help="print a JSON summary last")
    run.add_argument(
        "--method",
        default=None,
        help="the modality's reconstruction (default: sim9 wiener-sim, sim3 dl-sim3, "
        "fluctuation esrrf; fluctuation also sofi2 | sofi3 | sofi4)",
    )
    add_fluctuation_options(run)

    acq = sub.add_parser("acquire", help="run an automated imaging protocol (YAML/JSON)")
    acq.add_argument("protocol", type=Path, help="protocol file (useq MDASequence + srlive)")
    _add_microscope_options(acq)
    acq.add_argument("--out", type=Path, default=None, help="output .zarr")
    acq.add_argument("--overwrite", action="store_true", help="replace an existing store")
    acq.add_argument(
        "--software-timing",
        action="store_true",
        help="no hardware sequencing (SLM image + snap per frame)",
    )
    acq.add_argument("--json", action="store_true", help="print a JSON summary last")

    add_train_parser(sub)

    ev = sub.add_parser("evaluate", help="score models and baselines on held-out simulated data")
    ev.add_argument("models", nargs="*", help="model names or weights (default: all shipped)")
    ev.add_argument("--size", type=int, default=128, help="field size in camera pixels")
    ev.add_argument("--fields", type=int, default=2, help="fields per structure type")
    ev.add_argument(
        "--write-cards", action="store_true", help="append the results to the shipped models' cards"
    )
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ev.add_argument("--precision", **PRECISION_ARG)
    ev.add_argument("--json", action="store_true", help="JSON output")
    ev.add_argument(
        "--stores",
        nargs="+",
        type=Path,
        default=None,
        metavar="STORE",
        help="score on these acquisitions against wiener-sim instead (reconstructed on Dask)",
    )
    ev.add_argument("--out", type=Path, default=None, help="--stores: where reconstructions go")
    ev.add_argument("--workers", type=int, default=None, metavar="N", help="--stores: cluster size")
    ev.add_argument("--scheduler", default=None, metavar="ADDR", help="--stores: Dask scheduler")

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
        help="SIM: wiener-sim | dl-sim3 | dl-sim9 | dl-denoise | dl-wf2sr | a .safetensors "
        "model; fluctuation bursts: esrrf | sofi2 | sofi3 | sofi4",
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
    dist = rec.add_argument_group("distributed (Dask): resumable, the same output as one process")
    dist.add_argument(
        "--workers", type=int, default=None, metavar="N", help="a local cluster of N processes"
    )
    dist.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT", help="a running Dask scheduler"
    )

    bench = sub.add_parser("bench", help="benchmarks (JSON output)")
    bench.add_argument(
        "what",
        choices=[
            "camera",
            "recon",
            "storage",
            "acquisition",
            "models",
            "pipeline",
            "soak",
            "optimizer",
            "sim-real",
            "distributed",
            "fluctuation",
            "esrrf-peer",
        ],
    )
    bench.add_argument(
        "--sets",
        type=int,
        default=None,
        help="acquisition: SIM sets per method (20); distributed: sets in the store (200)",
    )
    bench.add_argument("--motion", action="store_true", help="camera: live sample dynamics on")
    bench.add_argument(
        "--size",
        type=int,
        default=None,
        help="frame size (512; pipeline --modality fluctuation 256)",
    )
    bench.add_argument(
        "--modality",
        default=None,
        help="pipeline: fluctuation streams blinking bursts through eSRRF/SOFI windows "
        "(--method, --window, --step, ...); default: the model's modality",
    )
    bench.add_argument("--method", default=None, help="pipeline --modality fluctuation: esrrf")
    add_fluctuation_options(bench)
    bench.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="how long to stream (camera 5, soak 600; pipeline 30: model-only and end-to-end "
        "each, in 3 alternating rounds)",
    )
    bench.add_argument("--device", default="auto", help="models/pipeline/soak: auto | cpu | cuda")
    bench.add_argument("--precision", **PRECISION_ARG)
    bench.add_argument(
        "--model",
        default=None,
        help="models: one model (default all shipped); pipeline/soak: model (default dl-sim3)",
    )
    bench.add_argument(
        "--threads", type=int, default=None, help="pipeline/soak: inference threads (cores - 1)"
    )
    bench.add_argument(
        "--inference",
        choices=["process", "thread"],
        default="process",
        help="pipeline/soak: model in a child process (default) or on a thread",
    )
    bench.add_argument(
        "--acquisition-nice",
        type=int,
        default=0,
        help="pipeline: lower the session and simulated-camera threads' priority by N",
    )
    bench.add_argument(
        "--pin",
        action="store_true",
        help="pipeline/soak: CPU partition (acquisition on one core, inference on the rest)",
    )
    bench.add_argument(
        "--exposure-ms",
        type=float,
        default=None,
        help="camera 5, acquisition 10, pipeline/soak the profile's shortest (top speed)",
    )
    bench.add_argument("--repeats", type=int, default=20)
    bench.add_argument("--dir", type=Path, default=None, help="storage: directory to write in")
    bench.add_argument("--json", action="store_true", help="JSON only (default prints JSON too)")
    bench.add_argument(
        "--timepoints", type=int, default=200, help="optimizer: timepoints per timelapse"
    )
    bench.add_argument(
        "--samples", nargs="+", default=None, help="optimizer: sample types (default: all)"
    )
    bench.add_argument("--plot", default=None, help="optimizer: write a PNG of the arms here")
    bench.add_argument(
        "--input", type=Path, default=None, help="sim-real: raw SIM file (default ../shared ER_1)"
    )
    bench.add_argument(
        "--reference", type=Path, default=None, help="sim-real: the reference SR image"
    )
    bench.add_argument("--pixel-nm", type=float, default=65.0, help="sim-real: camera pixel, nm")
    bench.add_argument("--na", type=float, default=1.49, help="sim-real: numerical aperture")
    bench.add_argument("--emission-nm", type=float, default=510.0, help="sim-real: emission, nm")
    bench.add_argument("--offset-adu", type=float, default=60.0, help="sim-real: camera offset")
    bench.add_argument(
        "--peer-python",
        type=Path,
        default=None,
        help="sim-real / esrrf-peer: the peer venv's python (default .peers/<peer>/bin/python)",
    )

    prior = sub.add_parser(
        "optimizer-prior", help="learn the optimizer's prior on the simulator (JSON + card)"
    )
    prior.add_argument("--out", type=Path, default=None, help="default: the shipped prior")
    prior.add_argument("--seeds", type=int, default=4, help="fields per structure")
    prior.add_argument("--levels", type=int, default=12, help="light levels per field")

    view = sub.add_parser("view", help="browse a saved acquisition (raw and SR over time)")
    view.add_argument("store", type=Path, help="an srlive OME-Zarr store (run or protocol)")
    view.add_argument("--series", default=None, help="series to show first")
    view.add_argument("--t", type=int, default=0, help="set to show first")
    view.add_argument(
        "--snapshot", type=Path, default=None, metavar="PNG", help="save a PNG instead of showing"
    )

    prof = sub.add_parser("profile", help="validate a profile and its Micro-Manager config")
    prof.add_argument("profile", nargs="?", default=None)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from srlive.acquisition.live import RunSettings
    from srlive.viewer.display import display_available

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    fluctuation = None
    if args.modality == "fluctuation":
        fluctuation = fluctuation_from_args(args, args.method or "esrrf")
    elif flags := given_fluctuation_flags(args):
        raise UsageError(f"{', '.join(flags)}: only for --modality fluctuation")
    settings = RunSettings(
        profile=args.profile,
        modality=args.modality,
        frames=args.frames,
        exposure_ms=args.exposure_ms,
        power_mw=args.power_mw,
        line=args.line,
        properties=args.properties,
        out=args.out,
        overwrite=args.overwrite,
        optimize=args.optimize,
        goal=args.goal,
        target_quality=args.target_quality,
        reconstruction=args.method,
        fluctuation=fluctuation,
    )
    if args.target_quality is not None and not 0 < args.target_quality <= 1:
        raise UsageError("--target-quality must be in (0, 1]")
    headless = args.headless or not display_available()
    summary = (
        _run_headless(settings)
        if headless
        else _run_with_window(settings, stay_open=not args.close_when_done)
    )
    text = (
        f"{summary.sr_images} SR images, {summary.raw_frames_stored}/"
        f"{summary.raw_frames_acquired} raw frames stored ({summary.raw_frames_dropped} dropped)"
        f" -> {summary.output}" + (" [interrupted]" if summary.interrupted else "")
    )
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(text)
    if summary.error and summary.error != "interrupted":
        print(f"srlive: error: {summary.error}", file=sys.stderr)
        return 3
    return 130 if summary.interrupted else 0


def _run_headless(settings):
    from tqdm import tqdm

    from srlive.acquisition.live import run_live
    from srlive.safety import graceful_stop

    with (
        graceful_stop(threading.Event()) as stop,
        tqdm(
            total=settings.frames, unit="set", desc=settings.modality, file=sys.stderr, disable=None
        ) as bar,
    ):
        return run_live(settings, stop=stop, progress=lambda n: bar.update(n - bar.n))


def _run_with_window(settings, stay_open: bool = True):
    from srlive.acquisition.live import run_live
    from srlive.profiles import load_profile
    from srlive.safety import graceful_stop

    try:
        from srlive.viewer.attach import attach_session
        from srlive.viewer.live import run_with_viewer
    except ImportError as exc:  # srlive installed without the qt extra
        raise UsageError(
            f"the live window needs a Qt binding (pip install 'srlive[qt]'), or use --headless "
            f"({exc})"
        ) from None

    profile = load_profile(settings.profile)
    result = {}

    def worker(viewer, stop: threading.Event) -> None:
        result["summary"] = run_live(
            settings,
            stop=stop,
            attach=lambda session: attach_session(viewer, session),
            stay_open=stay_open,
        )

    with graceful_stop(threading.Event()) as stop:
        run_with_viewer(
            worker,
            raw_pixel_nm=profile.optics.pixel_nm,
            sr_pixel_nm=profile.optics.pixel_nm / 2,
            title=f"srlive — {profile.name}",
            profile=profile,
            stop=stop,
        )
    return result["summary"]


def _cmd_acquire(args: argparse.Namespace) -> int:
    from srlive.acquisition.acquire import acquire
    from srlive.safety import graceful_stop

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
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['sets_completed']}/{summary['sets_planned']} sets, "
            f"{summary['raw_frames_stored']}/{summary['raw_frames_acquired']} raw frames stored "
            f"in {len(summary['series'])} series -> {summary['output']}"
        )
    if summary["error"] and summary["error"] != "interrupted":
        print(f"srlive: error: {summary['error']}", file=sys.stderr)
        return 3
    return 130 if summary["interrupted"] else 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.stores is not None:
        return _cmd_evaluate_stores(args)
    if args.out is not None or args.workers is not None or args.scheduler is not None:
        raise UsageError("--out, --workers and --scheduler go with --stores")
    from srlive.learn.card import write_card
    from srlive.learn.evaluate import evaluate
    from srlive.learn.infer import LearnedReconstructor, resolve_weights
    from srlive.learn.train import WEIGHTS_DIR

    names = args.models or sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
    models = {}
    for name in names:
        recon = LearnedReconstructor(resolve_weights(name), args.device, precision=args.precision)
        models[recon.task.name] = recon
    summary = evaluate(models, size=args.size, fields_per_structure=args.fields, progress=True)
    if args.write_cards:
        from srlive.learn.bench import time_model
        from srlive.learn.train import machine_description

        for recon in models.values():
            timing = {
                "frame_shape": [512, 512],
                "device": recon.device.type,
                "precision": recon.precision_name,
                "torch_threads": torch_threads(),
                "machine": machine_description(),
                **time_model(recon, 512, repeats=10),
            }
            if recon.task.inputs == "single-phase":  # as a live series runs it
                timing["live"] = time_model(recon, 512, repeats=10, live=True)
            shipped = Path("srlive/learn/weights") / recon.path.name
            write_card(recon.path, shipped, summary, timing)
    print(json.dumps(summary, indent=2))
    return 0


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


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
_OPTICS_FIELDS = {
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


def _cmd_evaluate_stores(args: argparse.Namespace) -> int:
    from srlive.learn.evaluate_stores import evaluate_stores
    from srlive.learn.train import WEIGHTS_DIR

    if args.out is None:
        raise UsageError("--stores needs --out DIR (the reconstructions are kept there)")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    names = args.models or sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
    summary = evaluate_stores(
        args.stores, names, args.out, workers=args.workers, scheduler=args.scheduler
    )
    print(json.dumps(summary, indent=2))
    return 0


# reconstruct's options that mean nothing to the fluctuation methods (refused with them)
_SIM_ONLY_OPTIONS = (
    ("na", "--na"),
    ("emission_nm", "--emission-nm"),
    ("angles", "--angles"),
    ("phases", "--phases"),
    ("order", "--order"),
    ("pattern_period_nm", "--pattern-period-nm"),
    ("pattern_angles_deg", "--pattern-angles-deg"),
    ("wiener", "--wiener"),
    ("optics", "--optics"),
    ("plot", "--plot"),
)


def _reconstruct_fluctuation_args(args: argparse.Namespace) -> dict[str, Any] | None:
    """The fluctuation settings given (None values: defaulted to the input), for a
    fluctuation method; None for a SIM method. UsageError for options of the other kind."""
    from srlive.cli_fluctuation import FLUCTUATION_FLAGS
    from srlive.recon.fluctuation.method import FLUCTUATION_METHODS

    if args.method not in FLUCTUATION_METHODS:
        if flags := given_fluctuation_flags(args):
            methods = ", ".join(FLUCTUATION_METHODS)
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


def _cmd_reconstruct(args: argparse.Namespace) -> int:
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


def _given(**options: Any) -> dict[str, Any]:
    """The options the user set (None: leave the function's own default)."""
    return {name: value for name, value in options.items() if value is not None}


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    if args.what == "camera":
        from simulators.bench import bench_camera

        result = bench_camera(
            size=args.size or 512,
            seconds=args.seconds or 5.0,
            motion=args.motion,
            **_given(exposure_ms=args.exposure_ms),
        )
    elif args.what == "pipeline" and args.modality == "fluctuation":
        from srlive.pipeline.bench_fluctuation import bench_pipeline_fluctuation

        result = bench_pipeline_fluctuation(
            fluctuation_from_args(args, args.method or "esrrf"),
            size=args.size or 256,
            seconds=args.seconds or 30.0,
            threads=args.threads,
            inference=args.inference,
            exposure_ms=args.exposure_ms,
        )
    elif args.what == "pipeline":
        if args.modality is not None:
            raise UsageError("--modality: only fluctuation (other modalities follow --model)")
        from srlive.pipeline.bench import bench_pipeline

        result = bench_pipeline(
            device=args.device,
            size=args.size or 512,
            model=args.model or "dl-sim3",
            seconds=args.seconds or 30.0,
            threads=args.threads,
            inference=args.inference,
            pin_cpus=args.pin,
            acquisition_nice=args.acquisition_nice,
            exposure_ms=args.exposure_ms,
        )
    elif args.what == "soak":
        from srlive.pipeline.bench import bench_soak

        result = bench_soak(
            seconds=args.seconds or 600.0,
            size=args.size or 512,
            model=args.model or "dl-sim3",
            device=args.device,
            threads=args.threads,
            out_dir=args.dir,
            inference=args.inference,
            pin_cpus=args.pin,
            exposure_ms=args.exposure_ms,
        )
    elif args.what == "acquisition":
        from srlive.acquisition.bench import bench_acquisition

        result = bench_acquisition(
            size=args.size or 512, n_sets=args.sets or 20, **_given(exposure_ms=args.exposure_ms)
        )
    elif args.what == "models":
        from srlive.learn.bench import bench_models

        result = bench_models(
            [args.model] if args.model else None,
            size=args.size or 512,
            repeats=args.repeats,
            device=args.device,
            precision=args.precision,
        )
    elif args.what == "optimizer":
        result = _bench_optimizer(args)
    elif args.what == "recon":
        from srlive.recon.bench import bench_wiener

        result = bench_wiener(size=args.size or 512, repeats=args.repeats)
    elif args.what == "distributed":
        from srlive.recon.bench_distributed import bench_distributed

        result = bench_distributed(sets=args.sets or 200, size=args.size or 256)
    elif args.what == "fluctuation":
        from srlive.recon.fluctuation.bench import bench_fluctuation

        result = bench_fluctuation()
    elif args.what == "esrrf-peer":
        from srlive.recon.fluctuation.bench import EsrrfPeerOptions, bench_esrrf_peer

        size = args.size or 512
        result = bench_esrrf_peer(
            EsrrfPeerOptions(
                size=size,
                repeats=1 if size <= 256 else 0,  # NanoPyx: ~20 min per 512² window here
                peer_python=str(args.peer_python) if args.peer_python else None,
            )
        )
    elif args.what == "sim-real":
        from srlive.recon.bench import RealOptics, bench_sim_real

        if min(args.pixel_nm, args.na, args.emission_nm) <= 0:
            raise UsageError("--pixel-nm, --na and --emission-nm must be positive")
        result = bench_sim_real(
            input_path=args.input,
            reference=args.reference,
            optics=RealOptics(args.pixel_nm, args.na, args.emission_nm, args.offset_adu),
            peer_python=args.peer_python,
            repeats=args.repeats,
            progress=lambda message: print(f"srlive: bench: {message}", file=sys.stderr),
        )
    else:
        import tempfile

        from srlive.storage.bench import bench_storage

        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            result = bench_storage(Path(tmp), frame_shape=(args.size or 512, args.size or 512))
    print(json.dumps(result, indent=2))
    return 0


def _bench_optimizer(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from srlive.optimize.bench import GRID_EXPOSURES, GRID_POWERS, SAMPLE_TYPES, bench_optimizer
    from srlive.optimize.optimizer import POLICIES

    if args.timepoints < 20:
        raise UsageError("--timepoints must be at least 20")
    n_samples = len(args.samples or SAMPLE_TYPES)
    arms = n_samples * (2 + len(POLICIES) + len(GRID_POWERS) * len(GRID_EXPOSURES))
    with tqdm(total=arms, unit="arm", file=sys.stderr, disable=None) as bar:

        def progress(message: str) -> None:
            bar.set_description(message)
            bar.update(1)

        return bench_optimizer(
            timepoints=args.timepoints,
            samples=args.samples,
            profile=None,
            progress=progress,
            plot=args.plot,
        )


def _cmd_optimizer_prior(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from srlive.optimize.prior import PRIOR_PATH, PriorSettings, make_prior, write_prior

    out = args.out or PRIOR_PATH
    settings = PriorSettings(seeds_per_structure=args.seeds, levels=args.levels)
    with tqdm(unit="field", file=sys.stderr, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        prior, _ = make_prior(settings, progress=progress)
    command = f"srlive optimizer-prior --seeds {args.seeds} --levels {args.levels}"
    if args.out:
        command += f" --out {args.out}"
    write_prior(prior, out, command)
    print(json.dumps({"prior": str(out), **prior.to_json()}, indent=2))
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from srlive.viewer.browse import view_store

    shot = view_store(args.store, series=args.series, t=args.t, snapshot=args.snapshot)
    if shot is not None:
        print(shot)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from srlive.hardware.connect import connect
    from srlive.profiles import load_profile

    profile = load_profile(args.profile)
    scope = connect(profile)
    try:
        limits = scope.profile.limits  # the profile's limits met by the devices' own
        power = ", ".join(f"{line}: {mw:g}" for line, mw in sorted(limits.max_power_mw.items()))
        print(
            f"{profile.source}: ok ({len(scope.core.getLoadedDevices())} devices, "
            f"lasers {profile.laser_lines}, camera {scope.frame_shape}, max power mW {{{power}}}, "
            f"exposure {limits.min_exposure_ms:g}–{limits.max_exposure_ms:g} ms)"
        )
    finally:
        scope.core.unloadAllDevices()
    return 0


def _configure_logging(verbose: bool) -> None:
    """One stderr handler; libraries' debug chatter only with --verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("srlive: %(levelname)s: %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    mm_logger = logging.getLogger("pymmcore-plus")
    mm_logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for h in list(mm_logger.handlers):
        h.setLevel(logging.DEBUG if verbose else logging.ERROR)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (never a multi-line repr)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input gives one line on stderr and a non-zero exit."""
    from srlive.acquisition.protocol import ProtocolError
    from srlive.profiles import ProfileError
    from srlive.safety import SafetyError

    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    handlers = {
        "train": cmd_train,
        "evaluate": _cmd_evaluate,
        "reconstruct": _cmd_reconstruct,
        "run": _cmd_run,
        "acquire": _cmd_acquire,
        "bench": _cmd_bench,
        "profile": _cmd_profile,
        "optimizer-prior": _cmd_optimizer_prior,
        "view": _cmd_view,
    }
    try:
        return handlers[args.command](args)
    except (
        ProfileError,
        ProtocolError,
        SafetyError,
        UsageError,
        ValueError,
        OSError,  # FileExistsError, FileNotFoundError, PermissionError, a full disk, ...
    ) as exc:
        if args.verbose:
            raise
        print(f"srlive: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srlive: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
