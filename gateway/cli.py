"""The ``escalation-hub`` command line: one sub-command module per job."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.commands import commands

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalation-hub",
        description=(
            "Keeps multi-agency child-safeguarding escalations in sync across the case systems "
            "of social care, health and police."
        ),
        epilog="Run 'escalation-hub COMMAND --help' for the options of one command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in commands():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
