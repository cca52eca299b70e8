"""Ingest: a connector's batch of agency events, stored durably in ONE transaction before 202.

Per batch: the signed body's fingerprint is claimed under its webhook id (``fingerprints``:
another body under a used id is 409); a repeated webhook id gets the first answer again and
changes nothing; each event is checked, numbered in its escalation's order, stored sealed and
announced by a ``decide`` outbox row (``ingest_batch``). Any refusal rolls the whole batch
back, its fingerprint with it. A refusal because the escalation is unknown (or the agency is
no party to it) is answered 404 either way and written to the audit log in a transaction of
its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.bootstrap import Hub
from gateway.metrics import INGEST_REFUSED, INGESTED
from gateway.services import fingerprints
from gateway.services.errors import Conflict, NotFound, Refused, Unavailable
from gateway.services.ingest_batch import Batch, Denied
from gateway.store.audit import append
from gateway.store.db import transaction
from gateway.store.models import IdempotentResponse
from schemas.envelope import AgencyEvent

__all__ = ["Accepted", "accept"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """The answer to a webhook request: status 202 and the JSON body (ids only)."""

    status_code: int
    body: dict[str, Any]


def accept(
    hub: Hub,
    *,
    connector_id: str,
    agency_id: str,
    webhook_id: str,
    events: Sequence[AgencyEvent],
    body_sha256: str | None = None,
) -> Accepted:
    """Store ``events`` (all or nothing) with their decide messages; return the 202 answer.

    ``body_sha256`` is the signed body's digest: it is claimed for ``webhook_id`` in the same
    transaction (``fingerprints``), so the id can never name another body. Only in-process
    callers without a body (tests, the benchmark's router run) leave it out."""
    ids = _Ids(connector_id, agency_id, webhook_id, body_sha256)
    try:
        return _accept_retrying_races(hub, ids, events)
    except Denied as denied:
        _audit_denial(hub, connector_id=connector_id, agency_id=agency_id, denied=denied)
        INGEST_REFUSED.labels(reason="not_found").inc()
        raise NotFound(
            f"there is no escalation '{denied.subject}' that agency '{agency_id}' is a party "
            "to; use the escalation id the hub returned when the escalation was raised",
            field=f"[{denied.index}].subject",
        ) from None
    except Refused as refused:
        reason = "replay" if isinstance(refused, _Replayed) else type(refused).__name__.lower()
        INGEST_REFUSED.labels(reason=reason).inc()
        raise


@dataclass(frozen=True)
class _Ids:
    """Who sent the batch, under which webhook id, and the digest of its signed body."""

    connector_id: str
    agency_id: str
    webhook_id: str
    body_sha256: str | None


def _accept_retrying_races(hub: Hub, ids: _Ids, events: Sequence[AgencyEvent]) -> Accepted:
    """Run the batch; a unique-key race (same webhook id or event) is retried once, which then
    finds the winner's stored answer or reports the events as duplicates."""
    for attempt in (1, 2):
        try:
            return _accept_once(hub, ids, events)
        except IntegrityError:
            logger.info(
                "ingest.race_retried",
                extra={"connector_id": ids.connector_id, "try": attempt},
            )
        except (DBAPIError, PoolTimeout) as exc:
            logger.warning("ingest.store_unavailable", extra={"error": type(exc).__name__})
            raise Unavailable(
                "the hub's database cannot store events right now; nothing was stored, "
                "retry the same request later"
            ) from exc
    raise Conflict(
        f"webhook '{ids.webhook_id}' collided twice with concurrent requests for the same events; "
        "retry the request unchanged"
    )


def _accept_once(hub: Hub, ids: _Ids, events: Sequence[AgencyEvent]) -> Accepted:
    now = hub.clock()
    connector_id, webhook_id = ids.connector_id, ids.webhook_id
    with hub.engine.begin() as conn:  # on SQLite: BEGIN IMMEDIATE (store.db)
        stored = _stored_answer(conn, ids, now)
        if stored is not None:
            logger.info("ingest.replayed", extra={"connector_id": connector_id})
            return stored
        batch = Batch(hub, conn, connector_id=connector_id, agency_id=ids.agency_id, now=now)
        entries = [batch.take(index, event) for index, event in enumerate(events)]
        body: dict[str, Any] = {"accepted": entries}
        conn.execute(
            _INSERT_ANSWER,
            {
                "connector_id": connector_id,
                "webhook_id": webhook_id,
                "status_code": 202,
                "body": body,
                "created_at": now,
            },
        )
    for entry in entries:
        if not entry["duplicate"]:
            INGESTED.labels(type=entry["type"].rsplit(".", 1)[-1]).inc()
    logger.info(
        "ingest.accepted",
        extra={"connector_id": connector_id, "events": len(entries), "new": batch.new},
    )
    return Accepted(status_code=202, body=body)


def _stored_answer(conn: Connection, ids: _Ids, now: datetime) -> Accepted | None:
    """The first answer to this webhook id, if there is one; a different body under the id
    is refused (409). A new claim needs no lookup: nothing can be stored under it yet."""
    if ids.body_sha256 is not None:
        claimed = fingerprints.claim(
            conn,
            connector_id=ids.connector_id,
            webhook_id=ids.webhook_id,
            digest=ids.body_sha256,
            now=now,
        )
        if claimed is fingerprints.Claim.CONFLICT:
            logger.warning("ingest.webhook_id_reused", extra={"connector_id": ids.connector_id})
            raise _Replayed(fingerprints.REUSED, field="webhook-id")
        if claimed is fingerprints.Claim.NEW:
            return None
    keys = {"connector": ids.connector_id, "webhook": ids.webhook_id}
    stored = conn.execute(_ANSWER, keys).first()
    if stored is None:
        return None
    return Accepted(status_code=int(stored.status_code), body=dict(stored.body))


_ANSWERS = IdempotentResponse.__table__
_ANSWER: Final = select(_ANSWERS.c.status_code, _ANSWERS.c.body).where(
    _ANSWERS.c.connector_id == bindparam("connector"),
    _ANSWERS.c.webhook_id == bindparam("webhook"),
)
_INSERT_ANSWER: Final = insert(IdempotentResponse)


class _Replayed(Conflict):
    """A webhook id reused for another body (409; counted as ``replay``)."""


def _audit_denial(hub: Hub, *, connector_id: str, agency_id: str, denied: Denied) -> None:
    """Record the refused access in the audit chain (its own transaction: the batch is gone).

    The chain is permanent, so a subject that is not an escalation id (free text could be
    anything) is recorded only as such."""
    try:
        escalation_id: str | None = str(UUID(denied.subject))
    except ValueError:
        escalation_id = None
    try:
        with transaction(hub.sessions) as session:
            append(
                session,
                at=hub.clock(),
                action="access_denied",
                actor=agency_id,
                escalation_id=escalation_id,
                detail={
                    "connector_id": connector_id,
                    "event_id": denied.event_id,
                    "event_type": denied.event_type,
                    "subject": escalation_id or "(not an escalation id)",
                },
            )
    except SQLAlchemyError as exc:
        logger.error("ingest.audit_failed", extra={"error": type(exc).__name__})
        raise Unavailable(
            "the hub could not record this request in its audit log; retry later"
        ) from exc
