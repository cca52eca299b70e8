"""Webhook replay refusal: one ``webhook-id`` per connector names one body, for good.

Ingest already answers a repeated ``webhook-id`` with its first answer. This middleware makes
sure a repeat really is a repeat: for ``POST /v1/connectors/{id}/events`` it reads the body,
and once the Standard Webhooks signature holds, claims (connector, webhook-id) for the body's
SHA-256 in ``webhook_fingerprints`` (its own short transaction) before the route runs. The same
id with a different body gets 409 and reaches nothing. A claim whose request then fails
(4xx/5xx: nothing was stored) is released, so a corrected body may reuse the id. Requests it
cannot check (unknown or disabled connector, bad signature) pass through unclaimed: the route
refuses them with its own problem. Only hashes are stored, never bodies.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.problems import RETRY_AFTER, ProblemError, instance_of, problem_response
from gateway.api.ratelimit import events_connector
from gateway.api.routes_connectors import connector_secrets
from gateway.bootstrap import Hub
from gateway.metrics import INGEST_REFUSED
from gateway.store.db import transaction
from gateway.store.models import Connector
from gateway.store.models_security import WebhookFingerprint
from security.errors import SecurityError, SignatureError
from security.webhooks import verify

__all__ = ["SIGNED_STATE", "Claim", "ReplayGuard", "SignedRequest", "claim", "release"]

logger = logging.getLogger(__name__)
_RETRY: Final = {"Retry-After": RETRY_AFTER}
_UNAVAILABLE: Final = (
    "the hub's database cannot be reached; nothing was stored, retry the same request later"
)
_REUSED: Final = (
    "webhook-id reused with a different body: this id was first signed for other content, "
    "and nothing was stored now; resend the original body unchanged, or send new content "
    "under a new webhook-id"
)


class Claim(Enum):
    """What the fingerprint table says about a signed (connector, webhook-id, body)."""

    NEW = "new"  # first time: claimed by this request
    REPEAT = "repeat"  # same body as before: an idempotent retry
    CONFLICT = "conflict"  # a different body under the same id: refused


def claim(hub: Hub, *, connector_id: str, webhook_id: str, digest: str) -> Claim:
    """Record ``digest`` for (connector, webhook id) unless one is there; compare otherwise."""
    values = {
        "connector_id": connector_id,
        "webhook_id": webhook_id,
        "body_sha256": digest,
        "created_at": hub.clock(),
    }
    with transaction(hub.sessions) as session:
        inserted = session.execute(_insert_if_absent(session, values)).first()
        if inserted is not None:
            return Claim.NEW
        key = (connector_id, webhook_id)
        stored = session.get(WebhookFingerprint, key, populate_existing=True)
    same = stored is not None and stored.body_sha256 == digest
    return Claim.REPEAT if same else Claim.CONFLICT


def release(hub: Hub, *, connector_id: str, webhook_id: str, digest: str) -> None:
    """Drop this request's claim (its request stored nothing), if it is still ours."""
    with transaction(hub.sessions) as session:
        session.execute(
            delete(WebhookFingerprint).where(
                WebhookFingerprint.connector_id == connector_id,
                WebhookFingerprint.webhook_id == webhook_id,
                WebhookFingerprint.body_sha256 == digest,
            )
        )


def _insert_if_absent(session: Session, values: Mapping[str, Any]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(WebhookFingerprint).values(dict(values))
    elif dialect == "sqlite":
        statement = sqlite.insert(WebhookFingerprint).values(dict(values))
    else:
        raise NotImplementedError(
            f"webhook fingerprints support SQLite and PostgreSQL, not {dialect}"
        )
    statement = statement.on_conflict_do_nothing(index_elements=["connector_id", "webhook_id"])
    return statement.returning(WebhookFingerprint.webhook_id)  # a row only when inserted


#: Where the guard leaves a verified request for the route (``request.state``), so the
#: connector is read and the signature checked once per request.
SIGNED_STATE: Final = "eh_signed_request"


@dataclass(frozen=True)
class SignedRequest:
    """An active connector's request whose Standard Webhooks signature holds."""

    connector: Connector
    secrets: list[str]
    webhook_id: str


def _signed(
    hub: Hub, connector_id: str, headers: Mapping[str, str], body: bytes
) -> SignedRequest | None:
    """The request as verified if the connector is active and signed this body, else None."""
    with hub.reads() as session:
        row = session.get(Connector, connector_id)
    if row is None or row.status != "active":
        return None
    try:
        secrets = connector_secrets(hub, row)
        webhook_id = verify(secrets, headers, body, now=hub.clock())
    except (SignatureError, SecurityError, ValueError):
        return None
    return SignedRequest(row, secrets, webhook_id)


class ReplayGuard:
    """ASGI middleware: 409 for a known webhook id with a different body (see module doc)."""

    def __init__(self, app: ASGIApp, *, hub: Hub) -> None:
        self.app, self.hub = app, hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connector_id = events_connector(scope)
        if connector_id is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except ProblemError as exc:  # e.g. BodyLimit's 413 while reading
            await _problem(exc.status_code, exc.title, str(exc.detail), scope, exc.headers)(
                scope, receive, send
            )
            return
        replayed = _replaying(body, receive)
        try:
            ids = await run_in_threadpool(self._claim, connector_id, Headers(scope=scope), body)
        except SQLAlchemyError as exc:
            logger.warning("ingest.replay_store_unavailable", extra={"error": type(exc).__name__})
            await _problem(503, "Service unavailable", _UNAVAILABLE, scope, _RETRY)(
                scope, receive, send
            )
            return
        if ids is None:
            await self.app(scope, replayed, send)
            return
        outcome, names, signed = ids
        scope.setdefault("state", {})[SIGNED_STATE] = signed
        if outcome is Claim.CONFLICT:
            INGEST_REFUSED.labels(reason="replay").inc()
            logger.warning("ingest.webhook_id_reused", extra={"connector_id": connector_id})
            await _problem(409, "Conflict", _REUSED, scope, None, field="webhook-id")(
                scope, receive, send
            )
            return
        await self._run_claimed(scope, replayed, send, outcome, names)

    def _claim(
        self, connector_id: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[Claim, dict[str, str], SignedRequest] | None:
        """Claim the signed webhook id for this body; None when the request is not signed."""
        signed = _signed(self.hub, connector_id, headers, body)
        if signed is None:
            return None
        digest = hashlib.sha256(body).hexdigest()
        ids = {"connector_id": connector_id, "webhook_id": signed.webhook_id, "digest": digest}
        return claim(self.hub, **ids), ids, signed

    async def _run_claimed(
        self, scope: Scope, receive: Receive, send: Send, outcome: Claim, ids: dict[str, str]
    ) -> None:
        """Run the route; settle the claim by its status before the answer leaves."""
        settled = False

        async def settling(message: Message) -> None:
            nonlocal settled
            if message["type"] == "http.response.start" and not settled:
                settled = True
                await self._settle(outcome, ids, stored=200 <= int(message["status"]) < 300)
            await send(message)

        try:
            await self.app(scope, receive, settling)
        finally:
            if not settled:  # the route raised before answering: nothing was stored
                await self._settle(outcome, ids, stored=False)

    async def _settle(self, outcome: Claim, ids: dict[str, str], *, stored: bool) -> None:
        """Drop a claim whose request stored nothing; renew a repeat's claim that stored.

        A repeat renews it in case the first request failed and released the claim while
        this one was storing the same body."""
        if outcome is Claim.NEW and not stored:
            await run_in_threadpool(self._release, ids)
        elif outcome is Claim.REPEAT and stored:
            await run_in_threadpool(self._reclaim, ids)

    def _reclaim(self, ids: dict[str, str]) -> None:
        try:
            claim(self.hub, **ids)
        except SQLAlchemyError as exc:
            logger.warning("ingest.replay_reclaim_failed", extra={"error": type(exc).__name__})

    def _release(self, ids: dict[str, str]) -> None:
        try:
            release(self.hub, **ids)
        except SQLAlchemyError as exc:  # the claim stays: the same body still passes
            logger.warning(
                "ingest.replay_release_failed",
                extra={"connector_id": ids["connector_id"], "error": type(exc).__name__},
            )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands out the buffered body once, then waits as the original does."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _problem(
    status: int,
    title: str,
    detail: str,
    scope: Scope,
    headers: Mapping[str, str] | None,
    **extensions: Any,
) -> Any:
    instance = instance_of(scope)
    return problem_response(status, title, detail, instance=instance, headers=headers, **extensions)
