"""JSON Schema export of the common schema v1 (``escalation-hub schema export DIR``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.envelope import SCHEMA_VERSION, AgencyEvent, AnyEvent, HubEvent
from schemas.escalation import Escalation
from schemas.procedure import Procedure
from schemas.updates import Effect, StageUpdate

__all__ = ["export", "schemas_by_file"]

_BASE = "https://escalation-hub.org/schemas/v" + SCHEMA_VERSION + "/"


def schemas_by_file() -> dict[str, dict[str, Any]]:
    """Every published schema, keyed by its file name."""
    targets: dict[str, Any] = {
        "agency-event.json": AgencyEvent,
        "hub-event.json": HubEvent,
        "event.json": AnyEvent,
        "escalation.json": Escalation,
        "stage-update.json": StageUpdate,
        "effect.json": Effect,
        "procedure.json": Procedure,
    }
    out: dict[str, dict[str, Any]] = {}
    for name, target in targets.items():
        schema = TypeAdapter(target).json_schema(mode="validation")
        out[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": _BASE + name,
            **schema,
        }
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas_by_file().items():
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
