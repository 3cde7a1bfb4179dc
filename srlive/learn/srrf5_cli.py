"""``python -m srlive.learn.srrf5_cli evaluate``: dl-srrf5 on held-out prior-free bursts;
``widths``: which target width a perfect 5-frame image scores best at (validation fields).

Training is ``srlive train dl-srrf5 ...`` (the card lists the command). ``evaluate`` scores
a model (:func:`~srlive.learn.fluctuation_eval.evaluate_fluctuation`) and, with
``--write``, stores the summary in the weights' metadata and rewrites the card.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def _evaluate(args: argparse.Namespace, argv: list[str]) -> None:
    from srlive.learn.card import write_card
    from srlive.learn.fluctuation_eval import evaluate_fluctuation
    from srlive.learn.machine import machine_description
    from srlive.learn.train import save_weights
    from srlive.recon.learned.infer import LearnedReconstructor
    from srlive.recon.learned.weights import load_weights

    recon = LearnedReconstructor(args.weights, device="cpu")
    summary = evaluate_fluctuation(recon, args.size, args.fields, progress=True)
    summary["command"] = "python -m srlive.learn.srrf5_cli " + shlex.join(argv)
    summary["machine"] = machine_description()
    if args.write:
        model, task, info = load_weights(recon.path)
        save_weights(model, task, recon.path, {**info, "evaluation": summary})
        write_card(recon.path)
    print(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m srlive.learn.srrf5_cli")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="score on held-out prior-free bursts")
    ev.add_argument("--weights", default="dl-srrf5")
    ev.add_argument("--size", type=int, default=96, help="camera pixels per field")
    ev.add_argument("--fields", type=int, default=4, help="fields per structure generator")
    ev.add_argument("--write", action="store_true", help="store in the weights, rewrite card")
    widths = sub.add_parser("widths", help="SSIM of a perfect 5-frame image per target width")
    widths.add_argument("--factors", type=float, nargs="+", default=[1.0, 1.15, 1.25, 1.33, 1.41])
    widths.add_argument("--size", type=int, default=96, help="camera pixels per field")
    widths.add_argument("--fields", type=int, default=3, help="fields per structure generator")
    args = parser.parse_args(argv)
    if args.command == "widths":
        from srlive.learn.fluctuation_eval import target_width_scan

        print(json.dumps(target_width_scan(args.factors, args.size, args.fields), indent=2))
        return 0
    _evaluate(args, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
