"""pydantic errors of a JSON document, told in JSON's terms: where, what is wrong, what to send.

pydantic's own messages speak Python ("a valid tuple", "a valid dictionary or instance of
Person") and leave "expected" empty for most type errors. An integrator fixing a JSON document
needs "is not a JSON array" and "expected: a JSON array". ``json_problems`` builds each problem
from the error's type and constraints alone, never from the submitted value; only the messages
of our own model validators (which never quote values) are passed on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from schemas.errors import FieldProblem, field_path

__all__ = ["json_problems"]

_DATE: Final = "a date as YYYY-MM-DD, e.g. 2026-04-02"
_INSTANT: Final = "an ISO 8601 date-time with an offset, e.g. 2026-03-02T09:30:00Z"
_NUMBER: Final = ("is not a whole number", "a whole number, e.g. 2")
_BOOLEAN: Final = ("is not true or false", "a JSON boolean: true or false")
_ARRAY: Final = ("is not a JSON array", "a JSON array")
_OBJECT: Final = ("is not a JSON object", "a JSON object with the fields this format defines")

#: error type -> (what is wrong, what is expected); both free of the submitted value.
_FIXED: Final[Mapping[str, tuple[str, str]]] = {
    "missing": ("this field is missing", "a value: the field is required here"),
    "extra_forbidden": (
        "is not a field of this document",
        "only the fields this format defines: remove it or check its spelling",
    ),
    "string_type": ("is not a JSON string", "a JSON string"),
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "int_type": _NUMBER,
    "int_parsing": _NUMBER,
    "int_from_float": _NUMBER,
    "float_type": ("is not a number", "a JSON number"),
    "float_parsing": ("is not a number", "a JSON number"),
    "list_type": _ARRAY,
    "tuple_type": _ARRAY,
    "set_type": _ARRAY,
    "frozen_set_type": _ARRAY,
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
    "dataclass_type": _OBJECT,
    "date_type": ("is not a date", _DATE),
    "date_parsing": ("is not a date", _DATE),
    "date_from_datetime_parsing": ("is not a date", _DATE),
    "date_from_datetime_inexact": ("is not a date", _DATE),
    "datetime_type": ("is not a date-time", _INSTANT),
    "datetime_parsing": ("is not a date-time", _INSTANT),
    "datetime_from_date_parsing": ("is not a date-time", _INSTANT),
    "timezone_aware": ("is a date-time without an offset", _INSTANT),
    "union_tag_invalid": ("unknown value", "a value this format defines"),
    "union_tag_not_found": ("this field is missing", "a value this format defines"),
}
_BOUNDS: Final[Mapping[str, tuple[str, str]]] = {
    "greater_than": ("gt", "a number greater than {}"),
    "greater_than_equal": ("ge", "a number of at least {}"),
    "less_than": ("lt", "a number less than {}"),
    "less_than_equal": ("le", "a number of at most {}"),
}


def json_problems(exc: ValidationError) -> list[FieldProblem]:
    """One problem per error of ``exc``: the field path, what is wrong, what is expected.

    A length error on a list whose item already failed is left out: the sender fixes the item.
    """
    errors = exc.errors(include_input=False, include_url=False)
    failed = [tuple(e["loc"]) for e in errors]
    return [
        _problem(error)
        for error in errors
        if not (error["type"] == "too_short" and _is_parent(tuple(error["loc"]), failed))
    ]


def _is_parent(loc: tuple[Any, ...], others: list[tuple[Any, ...]]) -> bool:
    return any(len(o) > len(loc) and o[: len(loc)] == loc for o in others)


def _problem(error: Any) -> FieldProblem:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    field = field_path(error["loc"])
    if kind.startswith("union_tag"):
        field = _tag_field(field, ctx)
        tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
        problem, expected = _FIXED[kind]
        return FieldProblem(
            field=field,
            problem=problem,
            expected=f"one of {', '.join(tags)}" if tags else expected,
        )
    if kind in _FIXED:
        problem, expected = _FIXED[kind]
        return FieldProblem(field=field, problem=problem, expected=expected)
    said, wanted = _constrained(kind, ctx)
    own = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return FieldProblem(field=field, problem=said or own, expected=wanted)


def _tag_field(base: str, ctx: Mapping[str, Any]) -> str:
    tag = str(ctx.get("discriminator", "type")).strip("'")
    return tag if base == "(body)" else f"{base}.{tag}"


def _constrained(kind: str, ctx: Mapping[str, Any]) -> tuple[str | None, str]:
    """Errors whose expectation comes from the field's own constraints (never the value)."""
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return ("is empty" if least == 1 else "is too short"), f"at least {_count(least)}"
    if kind == "string_too_long":
        return "is too long", f"at most {_count(ctx.get('max_length'))}"
    if kind == "string_pattern_mismatch":
        return "is not in the expected form", f"text matching {ctx.get('pattern')}"
    if kind == "too_short":
        return "has too few items", f"at least {_count(ctx.get('min_length'), 'item')}"
    if kind == "too_long":
        return "has too many items", f"at most {_count(ctx.get('max_length'), 'item')}"
    if kind in ("literal_error", "enum"):
        return "is not a value this field takes", f"one of {ctx.get('expected')}"
    if kind in _BOUNDS:
        key, expected = _BOUNDS[kind]
        return "is out of range", expected.format(ctx.get(key))
    return None, "a value as the format's documentation describes for this field"


def _count(number: Any, noun: str = "character") -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
