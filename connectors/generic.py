"""The generic connector: the common schema itself, CloudEvents 1.0 JSON, both ways.

Inbound: one agency CloudEvent or an array of them (``application/json``,
``application/cloudevents+json``, ``application/cloudevents-batch+json``). Problems name the
field as ``[index].path`` and never repeat a value. Outbound: the stage update or notification
as compact JSON with sorted keys.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final

from pydantic import TypeAdapter, ValidationError

from connectors.base import (
    Connector,
    ConnectorMeta,
    InboundContext,
    MalformedDocument,
    OutboundDocument,
    OutboundRecord,
    Rendered,
    TranslationError,
)
from connectors.json_problems import json_problems
from schemas.envelope import AgencyEvent, agency_event_adapter
from schemas.errors import FieldProblem
from schemas.updates import StageUpdate

__all__ = ["MAX_DEPTH", "GenericConnector", "parse_json"]

MAX_DEPTH: Final = 32
_TOO_DEEP: Final = object()
JSON: Final = "application/json"
_OUTBOUND: TypeAdapter[OutboundDocument] = TypeAdapter(OutboundDocument)


class GenericConnector(Connector):
    """Case systems that already speak the common schema."""

    meta: ClassVar[ConnectorMeta] = ConnectorMeta(
        kind="generic",
        title="Common schema (CloudEvents 1.0 JSON)",
        version="1.0.0",
        reads=(JSON, "application/cloudevents+json", "application/cloudevents-batch+json"),
        writes=(JSON,),
        description="The hub's common escalation schema v1, one event or a batch.",
    )

    def translate_inbound(
        self, body: bytes, content_type: str, *, context: InboundContext
    ) -> list[AgencyEvent]:
        """Validate one CloudEvent or an array of them against the common schema."""
        document = parse_json(body)
        items = document if isinstance(document, list) else [document]
        if not isinstance(document, list | dict) or not 1 <= len(items) <= context.max_events:
            raise TranslationError(
                "the body is neither one CloudEvent object nor a batch of a size the hub takes",
                path="(body)",
                expected=f"one CloudEvent object or an array of 1 to {context.max_events}",
                title="Invalid batch",
            )
        events: list[AgencyEvent] = []
        problems: list[FieldProblem] = []
        for index, item in enumerate(items):
            try:
                events.append(agency_event_adapter.validate_python(item))
            except ValidationError as exc:
                problems.extend(_located(index, exc))
        if problems:
            raise TranslationError.of(problems, title="Invalid event")
        return events

    def render_outbound(self, document: OutboundDocument) -> Rendered:
        """The document as compact JSON with sorted keys (UTF-8)."""
        body = json.dumps(
            document.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode("utf-8")
        return Rendered(body=body, media_type=JSON)

    def read_outbound(self, rendered: Rendered) -> OutboundRecord:
        """The common-schema document, validated, as the case system files it."""
        try:
            document = _OUTBOUND.validate_json(rendered.body)
        except ValidationError as exc:
            raise TranslationError.of(json_problems(exc), title="Invalid update") from None
        if isinstance(document, StageUpdate):
            identifiers = document.child.identifiers if document.child else None
            return OutboundRecord(
                effect="stage_update",
                document_id=document.update_id,
                escalation_id=document.escalation_id,
                case_reference=document.recipient_case_reference,
                sequence=document.sequence,
                stage=document.stage,
                tier=document.tier,
                status=document.status.value,
                clause=document.clause,
                carries_child=document.child is not None,
                nhs_number=identifiers.nhs_number if identifiers else None,
            )
        return OutboundRecord(
            effect="notification",
            document_id=document.notification_id,
            escalation_id=document.escalation_id,
            stage=document.stage,
            tier=document.tier,
            clause=document.clause,
        )


def parse_json(body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """JSON from bytes, or MalformedDocument with the position of a syntax error."""
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise MalformedDocument(
            f"the body is not JSON: {exc.msg}",
            expected="a JSON document",
            position={"line": exc.lineno, "column": exc.colno, "offset": exc.pos},
            title="Malformed JSON",
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedDocument(str(exc), expected="UTF-8 JSON", title="Malformed JSON") from None
    except RecursionError:
        document = _TOO_DEEP
    if document is _TOO_DEEP or _depth(document) > max_depth:
        raise TranslationError(
            f"the JSON is nested more than {max_depth} levels deep",
            path="(body)",
            expected=f"at most {max_depth} levels of nesting",
            title="JSON too deep",
        )
    return document


def _no_constants(name: str) -> None:
    raise ValueError(f"the body uses {name}, which JSON does not allow; send a number or null")


def _depth(document: Any) -> int:
    """Nesting depth of containers, without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def _located(index: int, exc: ValidationError) -> list[FieldProblem]:
    """The problems of event ``index``, each path prefixed ``[index]``; values never shown."""
    located = []
    for problem in json_problems(exc):
        path = "" if problem.field == "(body)" else f".{problem.field}"
        located.append(problem.model_copy(update={"field": f"[{index}]{path}"}))
    return located
