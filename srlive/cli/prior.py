"""``srlive optimizer-prior``: learn the optimizer's prior on the simulator."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    prior = sub.add_parser(
        "optimizer-prior", help="learn the optimizer's prior on the simulator (JSON + card)"
    )
    prior.add_argument("--out", type=Path, default=None, help="default: the shipped prior")
    prior.add_argument("--seeds", type=int, default=4, help="fields per structure")
    prior.add_argument("--levels", type=int, default=12, help="light levels per field")


def cmd(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from srlive.optimize.prior import PRIOR_PATH
    from srlive.optimize.prior_fit import PriorSettings, make_prior, write_prior

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
