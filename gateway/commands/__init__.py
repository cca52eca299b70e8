"""Sub-commands. Each module exposes ``register(subparsers)`` whose parsers set ``handler``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.commands import (
    db_cmd,
    deadline_cmd,
    demo_cmd,
    procedures_cmd,
    schema_cmd,
    serve_cmd,
)

__all__ = ["COMMANDS"]

COMMANDS: list[Callable[[Any], None]] = [
    schema_cmd.register,
    procedures_cmd.register,
    deadline_cmd.register,
    db_cmd.register,
    serve_cmd.register,
    demo_cmd.register,
]
