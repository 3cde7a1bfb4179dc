"""``srlive bench NAME``: the benchmarks (JSON output), each with its own options."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    from srlive.bench import BENCHMARKS  # the registry only: each benchmark loads when run

    width = max(map(len, BENCHMARKS))
    bench = sub.add_parser(
        "bench",
        help="benchmarks (JSON output): srlive bench NAME --help",
        description="benchmarks, each with its own options (srlive bench NAME --help):\n"
        + "\n".join(f"  {name:<{width}}  {b.summary}" for name, b in BENCHMARKS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("name", nargs="?", choices=list(BENCHMARKS), metavar="NAME")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options")


def cmd(args: argparse.Namespace) -> int:
    from srlive.bench.run import main as run_benchmark

    return run_benchmark(args.name, args.options)
