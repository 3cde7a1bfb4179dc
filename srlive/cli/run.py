"""``srlive run``: a live run, in the window or headless."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from srlive.cli.common import UsageError, add_microscope_options
from srlive.cli.smlm import add_live_smlm_options, given_live_smlm_flags, live_smlm_from_args
from srlive.recon.fluctuation.options import (
    add_fluctuation_options,
    fluctuation_from_args,
    given_fluctuation_flags,
)


def add_parser(sub: Any) -> None:
    from srlive.recon.methods import describe

    run = sub.add_parser("run", help="live super-resolution run (default: simulated microscope)")
    add_microscope_options(run)
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
        f"fluctuation esrrf, smlm localization): {describe()} | a .safetensors model",
    )
    add_fluctuation_options(run)
    add_live_smlm_options(run)


def cmd(args: argparse.Namespace) -> int:
    from srlive.pipeline.run_live import RunSettings
    from srlive.viewer.display import display_available

    if args.frames < 1:
        raise UsageError("--frames must be at least 1")
    fluctuation = None
    if args.modality == "fluctuation":
        fluctuation = fluctuation_from_args(args, args.method or "esrrf")
    elif flags := given_fluctuation_flags(args):
        raise UsageError(f"{', '.join(flags)}: only for --modality fluctuation")
    smlm: dict[str, Any] = {}
    if args.modality == "smlm":
        smlm = live_smlm_from_args(args)
    elif flags := given_live_smlm_flags(args):
        raise UsageError(f"{', '.join(flags)}: only for --modality smlm")
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
        **smlm,
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

    from srlive.hardware.safety import graceful_stop
    from srlive.pipeline.run_live import run_live

    with (
        graceful_stop(threading.Event()) as stop,
        tqdm(
            total=settings.frames, unit="set", desc=settings.modality, file=sys.stderr, disable=None
        ) as bar,
    ):
        return run_live(settings, stop=stop, progress=lambda n: bar.update(n - bar.n))


def _run_with_window(settings, stay_open: bool = True):
    from srlive.hardware.safety import graceful_stop
    from srlive.pipeline.run_live import run_live
    from srlive.profiles import load_profile

    try:
        from srlive.viewer.attach import attach_session
        from srlive.viewer.window import run_with_viewer
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
