"""Validation errors for people: the field path, what was wrong, what is expected."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["FieldProblem", "describe", "field_path", "located"]


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


_WHOLE = "a whole number, e.g. 5"
_NUMBER = "a number, e.g. 5 or 2.5"
_INSTANT = (
    "an ISO 8601 date-time with a UTC offset, e.g. 2026-04-02T15:00:00+01:00 "
    "or 2026-04-02T14:00:00Z"
)
_DATE = "an ISO 8601 date, e.g. 2026-04-02"
_BOOLEAN = "true or false"
_LIST = "a list (a JSON array)"
_OBJECT = "an object (a JSON object)"

#: Context key of a ``located`` error: what the field expects.
_EXPECTED = "located_expected"

#: What is expected, by pydantic error type alone: never from the submitted value.
_EXPECTED_BY_TYPE = {
    "missing": "a value (this field is required)",
    "extra_forbidden": "no such field: remove it or check its spelling",
    "int_type": _WHOLE,
    "int_parsing": _WHOLE,
    "int_parsing_size": _WHOLE,
    "int_from_float": _WHOLE,
    "float_type": _NUMBER,
    "float_parsing": _NUMBER,
    "finite_number": _NUMBER,
    "datetime_type": _INSTANT,
    "datetime_parsing": _INSTANT,
    "datetime_from_date_parsing": _INSTANT,
    "datetime_object_invalid": _INSTANT,
    "timezone_aware": _INSTANT,
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "bool_type": _BOOLEAN,
    "bool_parsing": _BOOLEAN,
    "string_type": "text (a JSON string)",
    "list_type": _LIST,
    "tuple_type": _LIST,
    "dict_type": _OBJECT,
    "model_type": _OBJECT,
    "model_attributes_type": _OBJECT,
}
#: error type -> (context key, expected): the bound is the schema's own, not the input.
_BOUNDS = {
    "greater_than": ("gt", "a number greater than {}"),
    "greater_than_equal": ("ge", "a number of at least {}"),
    "less_than": ("lt", "a number less than {}"),
    "less_than_equal": ("le", "a number of at most {}"),
    "string_too_short": ("min_length", "text of at least {} character(s)"),
    "string_too_long": ("max_length", "text of at most {} character(s)"),
    "too_short": ("min_length", "at least {} item(s)"),
    "too_long": ("max_length", "at most {} item(s)"),
}


def located(
    title: str, loc: tuple[int | str, ...], error_type: str, message: str, *, expected: str
) -> ValidationError:
    """The error a model validator raises about one field inside its model.

    A plain ``ValueError`` is reported at the model itself (e.g. ``data``); this one, raised
    in the validator, is reported at ``loc`` below it (e.g. ``data.raised_by.agency_id``)
    by every reader of pydantic errors. ``message`` and ``expected`` must not quote values.
    """
    error = PydanticCustomError(error_type, message, {_EXPECTED: expected})
    return ValidationError.from_exception_data(
        title, [InitErrorDetails(type=error, loc=loc, input=None)]
    )


def _expected(err: Any) -> str | None:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if _EXPECTED in ctx:
        return str(ctx[_EXPECTED])
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    if "pattern" in ctx:
        return f"text matching {ctx['pattern']}"
    if kind in _BOUNDS and _BOUNDS[kind][0] in ctx:
        key, template = _BOUNDS[kind]
        return template.format(ctx[key])
    return _EXPECTED_BY_TYPE.get(kind)


def _problem(err: Any) -> FieldProblem:
    if err["type"] in _TAG_PROBLEMS:
        return _tag_problem(err)
    return FieldProblem(field=field_path(err["loc"]), problem=err["msg"], expected=_expected(err))
