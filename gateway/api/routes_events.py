"""Signed ingest: a connector POSTs its native documents; a 202 means they are durably stored.

Order of checks, cheapest and least trusting first: the size, declared and counted while
reading (``app.BodyLimit``, 413), the connector, the Standard Webhooks signature, the media
type (one its kind reads, 415), then the connector kind's ``translate_inbound`` (400 for a
malformed document, 422 for one it cannot translate: errors name native fields, never values),
the batch size, then ``ingest.accept`` stores it all in one transaction, with the body's
fingerprint under its ``webhook-id`` (409 if the id was first signed for another body).
All of it runs in one trip to the thread pool. The generic connector
reads the common schema itself (CloudEvents JSON, one event or a batch).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError

from connectors.base import Connector as ConnectorPlugin
from connectors.base import InboundContext, MalformedDocument, TranslationError, essence
from connectors.registry import Registry, UnknownConnectorKind
from gateway.api.access import ObjectId
from gateway.api.auth import HubDep
from gateway.api.connector_config import registry_of, stored_config
from gateway.api.problems import RETRY_AFTER, ProblemError, problem_responses
from gateway.api.routes_connectors import connector_secrets
from gateway.bootstrap import Hub
from gateway.metrics import INGEST_REFUSED
from gateway.services import ingest
from gateway.store.models import Connector
from schemas.envelope import AgencyEvent
from security.errors import SignatureError
from security.webhooks import HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, verify

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
_EXAMPLE = {
    "specversion": "1.0",
    "id": "evt-0001",
    "source": "urn:case-system:nhft",
    "type": "uk.escalation-hub.v1.acknowledged",
    "time": "2026-03-02T09:30:00Z",
    "subject": "5f0c6e1e-8d1f-4a53-9a0b-3c2d1e0f4a5b",  # the escalation id
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


#: Built once: it runs for every request. Core on the reader (a snapshot, never the write
#: lock) costs a fraction of an ORM session for what is a one-row read.
_CONNECTOR = select(Connector.__table__).where(Connector.__table__.c.id == bindparam("id"))


def _connector(hub: Hub, connector_id: str) -> tuple[Connector, list[str]]:
    """The active connector and its secrets, read in a short transaction of its own."""
    try:
        with hub.reader.connect() as conn:
            found = conn.execute(_CONNECTOR, {"id": connector_id}).first()
    except DBAPIError as exc:
        raise _unavailable(exc) from exc
    row = None if found is None else Connector(**found._mapping)  # detached, read only
    if row is None:
        detail = "no such connector; check 'connector_id' (the id given at registration)"
        raise _refuse("unknown_connector", 404, "Not found", detail, field="connector_id")
    if row.status != "active":
        detail = f"this connector is {row.status}; ask the hub administrator to enable it"
        raise _refuse("disabled", 403, "Connector disabled", detail, field="connector_id")
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


def _translated(
    hub: Hub, registry: Registry, row: Connector, headers: Mapping[str, str], body: bytes
) -> list[AgencyEvent]:
    """The body in the common schema, by the connector kind's own translation."""
    plugin = _plugin(registry, row)
    media_type = essence(headers.get("content-type"))
    if media_type not in plugin.meta.reads:
        reads = ", ".join(plugin.meta.reads)
        raise _refuse(
            "media_type",
            415,
            "Unsupported media type",
            f"a '{row.kind}' connector reads {reads}; send the body with one of them as its "
            "Content-Type",
            field="content-type",
            headers={"Accept-Post": reads},
            accepted=list(plugin.meta.reads),
        )
    context = InboundContext(
        agency_id=row.agency_id,
        connector_id=row.id,
        received_at=hub.clock(),
        config=stored_config(hub, row, plugin),
        max_events=hub.settings.max_batch,
    )
    try:
        events = plugin.translate_inbound(body, media_type, context=context)
    except TranslationError as exc:
        raise _untranslatable(row.kind, exc) from None
    if not 1 <= len(events) <= hub.settings.max_batch:
        raise _refuse(
            "batch",
            422,
            "Invalid batch",
            f"the document became {len(events)} events; send 1 to {hub.settings.max_batch}",
            field="(body)",
        )
    return events


def _plugin(registry: Registry, row: Connector) -> ConnectorPlugin:
    try:
        return registry.get(row.kind)
    except UnknownConnectorKind as exc:
        raise _refuse(
            "unknown_kind",
            409,
            "Connector kind not installed",
            f"this connector is of kind '{row.kind}', which this hub no longer has "
            f"(installed: {', '.join(exc.known)}); ask the hub administrator",
        ) from None


def _untranslatable(kind: str, exc: TranslationError) -> ProblemError:
    """A TranslationError as a problem: 400 if malformed, else 422; paths, never values."""
    malformed = isinstance(exc, MalformedDocument)
    problems = exc.problems
    detail = (
        exc.problem
        if len(problems) == 1
        else f"{len(problems)} problems in the '{kind}' document; see 'errors', fix and resend"
    )
    extra: dict[str, Any] = {"connector_kind": kind}
    if isinstance(exc, MalformedDocument) and exc.position is not None:
        extra["position"] = exc.position
    return _refuse(
        "malformed" if malformed else "invalid",
        400 if malformed else 422,
        exc.title or ("Malformed document" if malformed else "Untranslatable document"),
        detail,
        field=exc.path,
        errors=list(problems),
        **extra,
    )


def _ingest(
    hub: Hub, registry: Registry, connector_id: str, headers: Mapping[str, str], body: bytes
) -> ingest.Accepted:
    """Verify, translate and accept: one trip off the event loop."""
    connector, secrets = _connector(hub, connector_id)
    webhook_id = _verify(hub, secrets, headers, body)
    events = _translated(hub, registry, connector, headers, body)
    try:
        return ingest.accept(
            hub,
            connector_id=connector.id,
            agency_id=connector.agency_id,
            webhook_id=webhook_id,
            events=events,
            body_sha256=hashlib.sha256(body).hexdigest(),
        )
    except DBAPIError as exc:
        raise _unavailable(exc) from exc


@router.post(
    "/v1/connectors/{connector_id}/events",
    status_code=202,
    summary="Send a signed native document (generic connectors: one CloudEvent or an array)",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
    openapi_extra={
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
        ],
        "requestBody": {
            "required": True,
            "description": (
                "The connector kind's native document, in a media type the kind reads "
                "(GET /v1/connector-kinds); for the generic kind, CloudEvents JSON."
            ),
            # the schema per media type the installed kinds read: gateway.api.document
            "content": {"application/json": _BODY},
        },
    },
)
async def post_events(connector_id: ObjectId, request: Request, hub: HubDep) -> JSONResponse:
    """Verify, translate and durably accept events; answers 202 with their ids."""
    body = await request.body()  # BodyLimit (app.py) refuses it with 413 past max_body_bytes
    accepted = await run_in_threadpool(
        _ingest, hub, registry_of(request), connector_id, request.headers, body
    )
    on_accepted = request.app.state.on_accepted
    if on_accepted is not None and accepted.status_code == 202:
        on_accepted()
    return JSONResponse(accepted.body, status_code=accepted.status_code)
