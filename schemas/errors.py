"""Validation errors for people: the field path, what was wrong, what is expected."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["FieldProblem", "describe", "field_path"]


class FieldProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    problem: str
    expected: str | None = None


def field_path(loc: Sequence[int | str]) -> str:
    """Render a pydantic location as ``data.parties[1].agency_id``, skipping union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("uk.escalation-hub.", "function-")) or "[" in part:
            continue  # discriminator tag or validator name, not a field
        else:
            out += f".{part}" if out else part
    return out or "(body)"


def describe(exc: ValidationError) -> list[FieldProblem]:
    """Turn a pydantic error into problems that never echo the submitted value.

    A length error on a list whose item already failed is pydantic's echo of that failure,
    so it is left out: the person fixes the item, not the list.
    """
    errors = exc.errors(include_input=False, include_url=False)
    failed = [tuple(e["loc"]) for e in errors]
    return [
        _problem(err)
        for err in errors
        if not (err["type"] == "too_short" and _is_parent(tuple(err["loc"]), failed))
    ]


def _is_parent(loc: tuple[Any, ...], others: list[tuple[Any, ...]]) -> bool:
    return any(len(o) > len(loc) and o[: len(loc)] == loc for o in others)


_TAG_PROBLEMS = {
    "union_tag_invalid": "unknown value",
    "union_tag_not_found": "this field is missing",
}


def _tag_problem(err: Any) -> FieldProblem:
    """pydantic's own message would repeat the submitted tag: say it without the value."""
    ctx = err.get("ctx") or {}
    tag = str(ctx.get("discriminator", "type")).strip("'")
    base = field_path(err["loc"])
    field = tag if base == "(body)" else f"{base}.{tag}"
    tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))  # values, not enum reprs
    expected = f"one of {', '.join(tags)}" if tags else None
    return FieldProblem(field=field, problem=_TAG_PROBLEMS[err["type"]], expected=expected)


def _problem(err: Any) -> FieldProblem:
    if err["type"] in _TAG_PROBLEMS:
        return _tag_problem(err)
    ctx = err.get("ctx") or {}
    expected = None
    if "expected" in ctx:
        expected = f"one of {ctx['expected']}"
    elif "pattern" in ctx:
        expected = f"text matching {ctx['pattern']}"
    elif err["type"] == "missing":
        expected = "a value (this field is required)"
    elif err["type"] == "extra_forbidden":
        expected = "no such field: remove it or check its spelling"
    elif err["type"] == "timezone_aware":
        expected = "an ISO 8601 date-time with an offset, e.g. 2026-03-02T09:30:00Z"
    return FieldProblem(field=field_path(err["loc"]), problem=err["msg"], expected=expected)
