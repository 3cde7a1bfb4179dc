"""``srlive bench``: the benchmarks (JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from srlive.cli.common import PRECISION_ARG, UsageError, given
from srlive.cli.fluctuation_options import add_fluctuation_options, fluctuation_from_args


def add_parser(sub: Any) -> None:
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


def cmd(args: argparse.Namespace) -> int:
    if args.seconds is not None and args.seconds <= 0:
        raise UsageError("--seconds must be positive")
    if args.what == "camera":
        from simulators.bench import bench_camera

        result = bench_camera(
            size=args.size or 512,
            seconds=args.seconds or 5.0,
            motion=args.motion,
            **given(exposure_ms=args.exposure_ms),
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
            size=args.size or 512, n_sets=args.sets or 20, **given(exposure_ms=args.exposure_ms)
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
