"""``srlive bench NAME [options]``: build the benchmark's own parser, run it, print JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srlive.bench import BENCHMARKS
from srlive.bench.common import host_info, load_average

__all__ = ["listing", "main", "parser_for"]


def listing() -> str:
    """The benchmarks and their summaries, one a line."""
    width = max(map(len, BENCHMARKS))
    lines = [f"  {name:<{width}}  {entry.summary}" for name, entry in BENCHMARKS.items()]
    return "benchmarks (srlive bench NAME --help for one's options):\n" + "\n".join(lines)


def parser_for(name: str) -> tuple[argparse.ArgumentParser, Any]:
    """The benchmark's module and a parser with its options only."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    module = importlib.import_module(f"srlive.bench.{BENCHMARKS[name].module}")
    parser = argparse.ArgumentParser(
        prog=f"srlive bench {name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the default
    return parser, module


def main(name: str | None, argv: Sequence[str] = ()) -> int:
    """Run benchmark ``name`` with its command-line ``argv``; print the result as JSON."""
    if name is None:
        print(listing())
        return 0
    parser, module = parser_for(name)
    args = parser.parse_args(list(argv))
    load_before, start = load_average(), time.perf_counter()
    result: dict[str, Any] = module.run(args)
    result["command"] = shlex.join(["srlive", "bench", name, *argv])
    result["host"] = {
        **host_info(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    sys.stdout.flush()
    return 0
