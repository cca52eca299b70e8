"""``escalation-hub schema export DIR``: write the common schema as JSON Schema files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from schemas.export import export

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("schema", help="export the common escalation schema v1 as JSON Schema")
    ssub = p.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    e = ssub.add_parser("export", help="write one JSON Schema file per published model")
    e.add_argument("directory", type=Path, metavar="DIR", help="where to write the files")
    e.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    for path in export(args.directory):
        print(path)
    return 0
