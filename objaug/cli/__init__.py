"""The ``objaug`` command line: ``objaug <subcommand> ...``.

Subcommands are registered in :data:`SUBCOMMANDS` (name -> module path). Each module defines

* ``HELP``: a one-line description,
* ``add_arguments(parser: argparse.ArgumentParser) -> None``,
* ``run(args: argparse.Namespace) -> int`` (the exit status),

and imports anything heavy (torch models, kornia, timm) inside ``run`` so that ``objaug --help`` stays
fast. To add a subcommand, write ``objaug/cli/<name>.py`` and add one line to the table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

__all__ = ["SUBCOMMANDS", "TRACEBACK_ENV", "add_threads_argument", "build_parser", "fail", "main", "out_dir_problem",
           "with_threads"]

#: Set this environment variable to 1 to see the Python traceback of a command's error.
TRACEBACK_ENV = "OBJAUG_TRACEBACK"

#: Subcommand name -> module implementing it (see the module docstring for the interface).
SUBCOMMANDS: dict[str, str] = {
    "demo": "objaug.cli.demo",
    "cam": "objaug.cli.cam",
    "precompute": "objaug.cli.precompute",
    "inspect": "objaug.cli.inspect",
}


def fail(command: str, message: str) -> int:
    """Print ``objaug <command>: error: <message>`` on one line to stderr and return the usage-error status 2."""
    print(f"objaug {command}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def out_dir_problem(path: str, flag: str = "--out") -> str | None:
    """Why ``path`` cannot be an output directory (an existing file, or under one), or ``None``."""
    for p in (path, os.path.dirname(path.rstrip(os.sep))):
        if p and os.path.exists(p) and not os.path.isdir(p):
            return f"{flag} {path}: {p} is an existing file, not a directory; give a directory path (it is created)."
    return None


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """The ``--threads N`` option (torch's CPU threads for the command)."""
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; on a shared machine 1-2 is often faster)")


def with_threads(command: str, args: argparse.Namespace, run: Callable[[argparse.Namespace], int]) -> int:
    """Run ``run(args)`` with ``torch.set_num_threads(args.threads)`` (restored after); refuses ``--threads < 1``."""
    if args.threads is not None and args.threads < 1:
        return fail(command, f"--threads must be >= 1, got {args.threads}.")
    import torch

    threads = torch.get_num_threads()
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return run(args)
    finally:
        torch.set_num_threads(threads)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: a usage error is one line too (``objaug cam: error: argument --iters: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered subcommand."""
    from objaug import __version__

    parser = argparse.ArgumentParser(
        prog="objaug",
        description="Object-aware self-supervised learning: ContraCAM maps and boxes, object-aware crops, "
                    "background mixup.",
    )
    parser.add_argument("--version", action="version", version=f"objaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for name, module_path in SUBCOMMANDS.items():
        module = importlib.import_module(module_path)
        help_text = getattr(module, "HELP", "")
        p = sub.add_parser(name, help=help_text, description=module.__doc__ or help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``objaug`` console script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error is one line, exit status 2 (set OBJAUG_TRACEBACK=1)
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        return fail(args.command, f"{type(e).__name__}: {e} (set {TRACEBACK_ENV}=1 for the traceback)")
