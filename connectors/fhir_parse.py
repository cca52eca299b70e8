"""Reading FHIR R4 JSON with the fhir.resources models: media types, Bundles, references, errors.

The models are ``fhir.resources.R4B`` (FHIR 4.3.0): the elements of Task, Communication,
Bundle, Patient, PractitionerRole and Organization used here are the same as in R4 (4.0.1).
A pydantic ValidationError becomes a TranslationError naming the FHIRPath of each problem and
what the element expects; its text is never used, because it quotes the submitted values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from connectors.base import MalformedDocument, TranslationError
from schemas.errors import FieldProblem

__all__ = [
    "MEDIA_TYPES",
    "Located",
    "Resolver",
    "check_media_type",
    "common_schema",
    "fhir_path",
    "parse_document",
    "validate",
]

MEDIA_TYPES: Final = ("application/fhir+json", "application/json")
_FHIR_VERSIONS: Final = ("4.0", "4.3")
_BUNDLE_TYPES: Final = ("transaction", "batch", "collection")
_MAX_PROBLEMS: Final = 20
_EVENT_RESOURCES: Final[dict[str, type[Resource]]] = {"Task": Task, "Communication": Communication}
_SUPPORTING: Final = ("Patient", "PractitionerRole", "Practitioner", "Organization")

_DATE: Final = (
    "a real calendar date or dateTime in the form FHIR R4 defines, e.g. 2026-03-02 or "
    "2026-03-02T09:30:00Z"
)
_RANGE: Final = "a number in the range FHIR R4 allows for this element (e.g. not negative)"
_EXPECTED: Final = {
    "missing": "a value: FHIR R4 requires this element",
    "model_field_validation.missing": "a value: FHIR R4 requires this element",
    "string_type": "a JSON string",
    "string_pattern_mismatch": "a value in the format FHIR R4 defines for this element",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "list_type": "a JSON array",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "extra_forbidden": "only elements FHIR R4 defines here "
    "(check the spelling, or use an extension)",
    "value_error": "a value in the format FHIR R4 defines for this element "
    "(a dateTime with a time zone, e.g. 2026-03-02T09:30:00Z)",
    "date_type": _DATE,
    "date_parsing": _DATE,
    "date_from_datetime_parsing": _DATE,
    "date_from_datetime_inexact": _DATE,
    "datetime_type": _DATE,
    "datetime_parsing": _DATE,
    "datetime_from_date_parsing": _DATE,
    "timezone_aware": _DATE,
    "greater_than": _RANGE,
    "greater_than_equal": _RANGE,
    "less_than": _RANGE,
    "less_than_equal": _RANGE,
    "float_type": "a JSON number",
    "float_parsing": "a JSON number",
    "decimal_type": "a JSON number",
    "decimal_parsing": "a JSON number",
}
M = TypeVar("M", bound=Resource)


@dataclass(frozen=True)
class Located:
    """A parsed resource with its FHIRPath in the document and, in a Bundle, its fullUrl."""

    resource: Resource
    path: str
    full_url: str | None = None


def check_media_type(content_type: str) -> None:
    """Refuse anything but FHIR JSON (a fhirVersion parameter, if given, must be R4's)."""
    media, *params = (part.strip() for part in content_type.split(";"))
    if media.lower() not in MEDIA_TYPES:
        raise TranslationError(
            "is not a media type the FHIR R4 connector reads",
            path="Content-Type",
            expected=" or ".join(MEDIA_TYPES),
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "fhirversion" and value.strip().strip('"') not in _FHIR_VERSIONS:
            raise TranslationError(
                "names a FHIR version this connector does not read",
                path="Content-Type",
                expected="fhirVersion=4.0 (FHIR R4), or no fhirVersion parameter",
            )


def fhir_path(root: str, loc: Sequence[int | str]) -> str:
    """A pydantic error location as a FHIRPath, e.g. ``Task.businessStatus.coding[0].code``."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "root":
            path += ".resourceType" if part == "resource_type" else f".{part}"
    return path


def validate(model: type[M], data: dict[str, Any], *, path: str) -> M:
    """``data`` as a fhir.resources model, or a TranslationError that never quotes it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        problems = [
            FieldProblem(
                field=fhir_path(path, error["loc"]),
                problem=f"is not valid FHIR R4 ({error['type']})",
                expected=_EXPECTED.get(error["type"], "a value valid for this FHIR R4 element"),
            )
            for error in errors[:_MAX_PROBLEMS]
        ]
        raise TranslationError.of(problems, title="Invalid FHIR R4 resource") from None
    except (KeyError, TypeError):  # fhir.resources looks contained resource types up by name
        raise TranslationError(
            "contains a resource whose resourceType FHIR R4 does not define",
            path=f"{path}.contained",
            expected="contained resources of FHIR R4 types, e.g. Patient or PractitionerRole",
        ) from None


def parse_document(body: bytes, content_type: str) -> list[Located]:
    """A Task, a Communication, or a transaction/batch/collection Bundle of them, parsed."""
    check_media_type(content_type)
    data = _load_json(body)
    kind = data.get("resourceType")
    if kind == "Bundle":
        return _bundle(data)
    if isinstance(kind, str) and kind in _EVENT_RESOURCES:
        return [Located(validate(_EVENT_RESOURCES[kind], data, path=kind), kind)]
    raise TranslationError(
        "is not a resource type the escalation profile accepts",
        path="resourceType",
        expected="Task, Communication, or a Bundle (transaction, batch or collection) of them",
    )


def _load_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise MalformedDocument("is not UTF-8", expected="UTF-8 encoded JSON") from None
    except json.JSONDecodeError as exc:
        raise MalformedDocument(
            "is not valid JSON",
            expected="a FHIR R4 resource in JSON",
            position={"line": exc.lineno, "column": exc.colno},
        ) from None
    except RecursionError:
        raise MalformedDocument("nests too deeply", expected="a FHIR R4 resource") from None
    if not isinstance(data, dict):
        raise TranslationError(
            "is not a JSON object", path="(body)", expected="a FHIR resource with a resourceType"
        )
    return data


def _bundle(data: dict[str, Any]) -> list[Located]:
    if data.get("type") not in _BUNDLE_TYPES:
        raise TranslationError(
            "is not a Bundle type the connector reads",
            path="Bundle.type",
            expected=", ".join(_BUNDLE_TYPES),
        )
    entries = data.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(kind, str) or (kind not in _EVENT_RESOURCES and kind not in _SUPPORTING):
            raise TranslationError(
                "is not a resource type the escalation profile accepts in a Bundle",
                path=f"Bundle.entry[{index}].resource.resourceType",
                expected="Task, Communication, or a " + ", ".join(_SUPPORTING) + " they refer to",
            )
    bundle = validate(Bundle, data, path="Bundle")
    located = [
        Located(entry.resource, f"Bundle.entry[{index}].resource", entry.fullUrl)
        for index, entry in enumerate(bundle.entry or [])
        if entry.resource is not None
    ]
    if not any(isinstance(item.resource, Task | Communication) for item in located):
        raise TranslationError(
            "has no Task or Communication", path="Bundle.entry", expected="at least one of them"
        )
    return located


class Resolver:
    """Resolves references to contained resources (``#id``) and to entries of the Bundle."""

    def __init__(self, located: Sequence[Located]) -> None:
        self._entries = list(located)

    def resolve(self, ref: Reference | None, *, within: Located) -> Located | None:
        """The resource ``ref`` points to, with its path; None for a logical or outside one."""
        target = ref.reference if ref is not None else None
        if not target:
            return None
        if target.startswith("#"):
            contained = getattr(within.resource, "contained", None) or []
            for index, resource in enumerate(contained):
                if resource.id == target[1:]:
                    return Located(resource, f"{within.path}.contained[{index}]")
            return None
        for entry in self._entries:
            kind, local = entry.resource.get_resource_type(), entry.resource.id
            own = f"{kind}/{local}" if local else None
            if target in (entry.full_url, own) or (entry.full_url or "").endswith("/" + target):
                return entry
        return None


@contextmanager
def common_schema(path: str) -> Iterator[None]:
    """Turn a common-schema ValidationError into a TranslationError that quotes nothing."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise TranslationError(
            f"does not fit the common escalation schema (at {where}: {first['type']})",
            path=path,
            expected="a resource following the escalation profile (docs/connector-fhir.md)",
        ) from None
