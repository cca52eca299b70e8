"""How deliveries end and come back: succeeded, dead-lettered, listed, replayed.

A dead letter is a Delivery row with status "dead"; its attempts stay in
``delivery_attempts``. Replay puts it back to "pending" with a fresh outbox "deliver" poke,
in one transaction with its audit entry; it keeps its ``seq``, so its lane sends it before
any newer pending row (``gateway.services.lanes``). Listings show the target's host only: a callback
URL's path or query may hold a token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import httpx
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.services.errors import Conflict, Invalid, NotFound
from gateway.store.audit import append
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, OutboxMessage

__all__ = [
    "DeadLetter",
    "Undeliverable",
    "list_dead",
    "mark_dead",
    "mark_succeeded",
    "replay",
]

logger = logging.getLogger(__name__)
MAX_LIMIT: Final = 500


class Undeliverable(Exception):
    """A delivery that cannot be attempted (disabled connector, unusable document or key)."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead delivery as an operator sees it: ids, host, counts; never the document."""

    id: str
    escalation_id: str
    channel: str
    target_host: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime


def mark_succeeded(session: Session, row: Delivery, *, at: datetime, actor: str) -> None:
    """Finish a delivery as succeeded, with a "delivered" audit entry (ids only)."""
    row.status, row.finished_at = "succeeded", at
    detail = {"delivery_id": row.id, "channel": row.channel, "attempts": row.attempts}
    append(
        session,
        at=at,
        action="delivered",
        actor=actor,
        escalation_id=row.escalation_id,
        detail=detail,
    )


def mark_dead(
    session: Session, row: Delivery, *, at: datetime, actor: str, reason: str, error: str | None
) -> None:
    """Dead-letter a delivery; reason "gone" also disables its connector (HTTP 410)."""
    row.status, row.finished_at = "dead", at
    if error is not None:
        row.last_error = error[:500]
    if reason == "gone" and row.connector_id is not None:
        connector = session.get(Connector, row.connector_id, with_for_update=True)
        if connector is not None and connector.status != "disabled":
            connector.status = "disabled"
            logger.warning("delivery.connector_disabled", extra={"connector_id": connector.id})
    detail = {
        "delivery_id": row.id,
        "channel": row.channel,
        "target": "connector" if row.channel == "webhook" else "mailbox",
        "connector_id": row.connector_id,
        "reason": reason,
        "attempts": row.attempts,
        "last_status": row.last_status,
    }
    append(
        session,
        at=at,
        action="dead_letter",
        actor=actor,
        escalation_id=row.escalation_id,
        detail=detail,
    )


def list_dead(session: Session, *, limit: int = 100, after: str | None = None) -> list[DeadLetter]:
    """Dead deliveries, oldest first; ``after`` is the last id of the previous page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    query = select(Delivery).where(Delivery.status == "dead")
    if after is not None:
        cursor = session.get(Delivery, after)
        if cursor is None:
            raise Invalid(
                f"no delivery '{after}' to page after; start without 'after'", field="after"
            )
        query = query.where(
            or_(
                Delivery.created_at > cursor.created_at,
                and_(Delivery.created_at == cursor.created_at, Delivery.id > cursor.id),
            )
        )
    rows = session.scalars(query.order_by(Delivery.created_at, Delivery.id).limit(limit))
    return [_dead_letter(row) for row in rows]


def replay(hub: Hub, delivery_id: str, *, actor: str) -> None:
    """Put a dead delivery back to pending with a new "deliver" poke and a "replay" entry."""
    now = hub.clock()
    with transaction(hub.sessions) as session:
        row = session.get(Delivery, delivery_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no delivery '{delivery_id}'", field="delivery_id")
        if row.status != "dead":
            raise Conflict(
                f"delivery '{delivery_id}' is {row.status}, not dead: only dead letters replay",
                field="delivery_id",
            )
        _require_enabled(session, row)
        row.status, row.finished_at = "pending", None
        number = _poke(session, row.id, at=now)
        detail = {"delivery_id": row.id, "channel": row.channel, "replay": number}
        append(
            session,
            at=now,
            action="replay",
            actor=actor,
            escalation_id=row.escalation_id,
            detail=detail,
        )
    logger.info("delivery.replayed", extra={"delivery_id": delivery_id, "replay": number})


def _poke(session: Session, delivery_id: str, *, at: datetime) -> int:
    """Add the outbox "deliver" message of the next replay; return its number."""
    prefix = f"deliver:{delivery_id}:replay:"
    done = session.scalar(
        select(func.count()).where(OutboxMessage.message_id.startswith(prefix, autoescape=True))
    )
    number = (done or 0) + 1
    session.add(
        OutboxMessage(
            message_id=f"{prefix}{number}",
            topic="deliver",
            routing_key="deliver",
            payload={"delivery_id": delivery_id},
            created_at=at,
            published_at=None,
        )
    )
    return number


def _require_enabled(session: Session, row: Delivery) -> None:
    if row.channel != "webhook":
        return
    connector = session.get(Connector, row.connector_id or "")
    if connector is None:
        raise Conflict(
            f"delivery '{row.id}' names connector '{row.connector_id}', which is not registered",
            field="connector_id",
        )
    if connector.status == "disabled":
        raise Conflict(
            f"connector '{connector.id}' is disabled (its receiver answered 410 Gone or an "
            "administrator disabled it): re-enable it, then replay this delivery",
            field="connector_id",
        )


def _dead_letter(row: Delivery) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        escalation_id=row.escalation_id,
        channel=row.channel,
        target_host=_host(row.channel, row.target),
        attempts=row.attempts,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
    )


def _host(channel: str, target: str) -> str:
    """The host of a URL, or the domain of an address: never a path, query or mailbox."""
    if channel == "email":
        return target.rpartition("@")[2].strip().lower() or "(no domain)"
    try:
        return httpx.URL(target).host or "(no host)"
    except httpx.InvalidURL:
        return "(invalid URL)"
