"""Signed ingest: a connector POSTs CloudEvents; a 202 means they are durably stored.

Order of checks, cheapest and least trusting first: the size, declared and counted while
reading (``app.BodyLimit``, 413), the connector, the Standard Webhooks signature, JSON (position
of a syntax error, nesting depth), the batch size, each event against the common schema
(errors name fields, never values), then ``ingest.accept`` stores it all in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from gateway.api.auth import HubDep
from gateway.api.problems import RETRY_AFTER, ProblemError, problem_responses
from gateway.api.routes_connectors import connector_secrets
from gateway.bootstrap import Hub
from gateway.metrics import INGEST_REFUSED
from gateway.services import ingest
from gateway.store.models import Connector
from schemas.envelope import AgencyEvent, agency_event_adapter
from schemas.errors import FieldProblem, describe
from security.errors import SignatureError
from security.webhooks import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, verify

__all__ = ["MAX_DEPTH", "parse_events", "router"]

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
MAX_DEPTH = 32
_EXAMPLE = {
    "specversion": "1.0",
    "id": "evt-0001",
    "source": "urn:case-system:nhft",
    "type": "uk.escalation-hub.v1.acknowledged",
    "time": "2026-03-02T09:30:00Z",
    "subject": "<escalation id>",
    "data": {"by": {"agency_id": "nhft-health", "name": "A. Nurse", "role": "practitioner"}},
}
_BODY = {
    "schema": {
        "description": "One agency CloudEvent or an array of them: schemas/json/agency-event.json",
        "oneOf": [
            {"type": "object"},
            {"type": "array", "items": {"type": "object"}, "minItems": 1},
        ],
    },
    "example": [_EXAMPLE],
}


def _refuse(reason: str, status: int, title: str, detail: str, **kw: Any) -> ProblemError:
    INGEST_REFUSED.labels(reason=reason).inc()
    return ProblemError(status, title, detail, **kw)


def _unavailable(exc: Exception) -> ProblemError:
    logger.warning("ingest store unavailable", extra={"error": type(exc).__name__})
    return _refuse(
        "unavailable",
        503,
        "Service unavailable",
        "the hub's database cannot be reached; nothing was stored, retry the same request later",
        headers={"Retry-After": RETRY_AFTER},
    )


def _connector(hub: Hub, connector_id: str) -> tuple[Connector, list[str]]:
    """The active connector and its secrets, in a short transaction of its own."""
    try:
        with hub.sessions() as session:
            row = session.get(Connector, connector_id)
    except DBAPIError as exc:
        raise _unavailable(exc) from exc
    if row is None:
        raise _refuse("unknown_connector", 404, "Not found", f"no connector '{connector_id}'")
    if row.status != "active":
        detail = f"connector '{connector_id}' is {row.status}; ask the hub administrator"
        raise _refuse("disabled", 403, "Connector disabled", detail)
    return row, connector_secrets(hub, row)


def _verify(hub: Hub, secrets: list[str], headers: Mapping[str, str], body: bytes) -> str:
    try:
        return verify(secrets, headers, body, now=hub.clock())
    except SignatureError as exc:
        message = str(exc)
        header = next(
            (h for h in (HEADER_TIMESTAMP, HEADER_SIGNATURE, HEADER_ID) if h in message), None
        )
        raise _refuse(
            "signature",
            401,
            "Signature refused",
            message,
            field=header or "(body)",
            headers={"WWW-Authenticate": 'Webhook realm="escalation-hub"'},
        ) from None


def parse_events(body: bytes, *, max_batch: int) -> list[AgencyEvent]:
    """Parse and validate a CloudEvent or a batch of them; refuse with a problem otherwise."""
    document = _json(body)
    items = document if isinstance(document, list) else [document]
    if not isinstance(document, list | dict) or not 1 <= len(items) <= max_batch:
        raise _refuse(
            "batch",
            422,
            "Invalid batch",
            f"send one CloudEvent object or an array of 1 to {max_batch} of them",
            field="(body)",
        )
    events: list[AgencyEvent] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        try:
            events.append(agency_event_adapter.validate_python(item))
        except ValidationError as exc:
            problems.extend(_located(index, exc))
    if problems:
        detail = f"{len(problems)} field(s) are invalid; see 'errors', fix and resend"
        raise _refuse("invalid", 422, "Invalid event", detail, errors=problems)
    return events


def _json(body: bytes) -> Any:
    try:
        document = json.loads(body, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise _refuse(
            "json",
            400,
            "Malformed JSON",
            f"the body is not JSON: {exc.msg}",
            field="(body)",
            position={"line": exc.lineno, "column": exc.colno, "offset": exc.pos},
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _refuse("json", 400, "Malformed JSON", str(exc), field="(body)") from None
    except RecursionError:
        document = None
    if document is None or _depth(document) > MAX_DEPTH:
        detail = f"the JSON is nested more than {MAX_DEPTH} levels deep"
        raise _refuse("depth", 422, "JSON too deep", detail, field="(body)")
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
    for problem in describe(exc):
        path = "" if problem.field == "(body)" else f".{problem.field}"
        located.append(problem.model_copy(update={"field": f"[{index}]{path}"}))
    return located


def _checked(
    hub: Hub, secrets: list[str], headers: Mapping[str, str], body: bytes
) -> tuple[str, list[AgencyEvent]]:
    """The webhook id and the valid events of a signed body (CPU work, off the event loop)."""
    webhook_id = _verify(hub, secrets, headers, body)
    return webhook_id, parse_events(body, max_batch=hub.settings.max_batch)


@router.post(
    "/v1/connectors/{connector_id}/events",
    status_code=202,
    summary="Send signed events (one CloudEvent or an array)",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
    openapi_extra={
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
        ],
        "requestBody": {"required": True, "content": {"application/json": _BODY}},
    },
)
async def post_events(connector_id: str, request: Request, hub: HubDep) -> JSONResponse:
    """Verify, validate and durably accept events; answers 202 with their ids."""
    connector, secrets = await run_in_threadpool(_connector, hub, connector_id)
    body = await request.body()  # BodyLimit (app.py) refuses it with 413 past max_body_bytes
    webhook_id, events = await run_in_threadpool(_checked, hub, secrets, request.headers, body)
    try:
        accepted = await run_in_threadpool(
            ingest.accept,
            hub,
            connector_id=connector.id,
            agency_id=connector.agency_id,
            webhook_id=webhook_id,
            events=events,
        )
    except DBAPIError as exc:
        raise _unavailable(exc) from exc
    on_accepted = request.app.state.on_accepted
    if on_accepted is not None and accepted.status_code == 202:
        on_accepted()
    return JSONResponse(accepted.body, status_code=accepted.status_code)
