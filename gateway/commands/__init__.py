"""Sub-commands: every ``gateway/commands/*_cmd.py`` module exposes ``register(subparsers)``.

Modules are found by name, so adding a command never means editing a shared list; the order
of ``--help`` is the order below, then alphabetical.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

__all__ = ["commands"]

_FIRST = ("serve", "demo", "procedures", "deadline", "connectors", "db", "schema")


def commands() -> list[Callable[[Any], None]]:
    """The ``register`` function of every command module, in help order."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd")]
    rank = {f"{name}_cmd": i for i, name in enumerate(_FIRST)}
    names.sort(key=lambda n: (rank.get(n, len(rank)), n))
    return [importlib.import_module(f"{__name__}.{n}").register for n in names]
