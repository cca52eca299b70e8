"""Sub-commands. Each module exposes ``register(subparsers)`` whose parsers set ``handler``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.commands import deadline_cmd, procedures_cmd, schema_cmd

__all__ = ["COMMANDS"]

COMMANDS: list[Callable[[Any], None]] = [
    schema_cmd.register,
    procedures_cmd.register,
    deadline_cmd.register,
]
