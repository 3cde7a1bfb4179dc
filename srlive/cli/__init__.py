"""The ``srlive`` command line: one module per command (``srlive/cli/<command>.py``), each
with ``add_parser(sub)`` and ``cmd(args) -> exit code``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from srlive.cli import acquire, bench, evaluate, prior, profile, reconstruct, run, train, view
from srlive.cli.common import UsageError
from srlive.storage.files import software

log = logging.getLogger("srlive")

COMMANDS: dict[str, tuple[Callable[..., None], Callable[[argparse.Namespace], int]]] = {
    "run": (run.add_parser, run.cmd),
    "acquire": (acquire.add_parser, acquire.cmd),
    "train": (train.add_parser, train.cmd),
    "evaluate": (evaluate.add_parser, evaluate.cmd),
    "reconstruct": (reconstruct.add_parser, reconstruct.cmd),
    "bench": (bench.add_parser, bench.cmd),
    "optimizer-prior": (prior.add_parser, prior.cmd),
    "view": (view.add_parser, view.cmd),
    "profile": (profile.add_parser, profile.cmd),
}

__all__ = ["COMMANDS", "UsageError", "main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srlive", description="Live super-resolution microscopy through Micro-Manager."
    )
    parser.add_argument("--version", action="version", version=software())
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    return parser


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
    from srlive.errors import SafetyError
    from srlive.profiles import ProfileError

    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return COMMANDS[args.command][1](args)
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
