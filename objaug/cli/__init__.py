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
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "build_parser", "fail", "main"]

#: Subcommand name -> module implementing it (see the module docstring for the interface).
SUBCOMMANDS: dict[str, str] = {
    "demo": "objaug.cli.demo",
    "cam": "objaug.cli.cam",
    "precompute": "objaug.cli.precompute",
    "inspect": "objaug.cli.inspect",
}


def fail(command: str, message: str) -> int:
    """Print ``objaug <command>: error: <message>`` to stderr and return the usage-error status 2."""
    print(f"objaug {command}: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered subcommand."""
    from objaug import __version__

    parser = argparse.ArgumentParser(
        prog="objaug",
        description="Object-aware self-supervised learning: ContraCAM maps and boxes, object-aware crops, "
                    "background mixup.",
    )
    parser.add_argument("--version", action="version", version=f"objaug {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
