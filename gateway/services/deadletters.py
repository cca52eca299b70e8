"""How deliveries end and come back: succeeded, dead-lettered, listed, replayed.

A dead letter is a Delivery row with status "dead"; its attempts stay in
``delivery_attempts``. Replay puts it back to "pending" with a fresh outbox "deliver" poke,
in one transaction with its audit entry; it keeps its ``seq``, so its lane sends it before
any newer pending row (``gateway.services.lanes``). Listings show the target's host only: a callback
URL's path or query may hold a token.

A webhook for a disabled connector (its endpoint answered 410 Gone) is never dropped: it is
stored as a dead letter at once (reason ``connector_disabled``, nothing sent), whether it was
decided while the connector was disabled (``held_back``) or reached its lane afterwards
(``ConnectorDisabled``). ``replay_connector`` puts every dead letter of one connector back to
pending in the caller's transaction (enabling the connector with ``replay=true``), so its lane
sends them all in ``seq`` order before anything decided later. Both sides read the connector
under a lock, so an enable and a decision (or a lane) never cross: a dead letter written while
the connector is enabled is either replayed by that enable or not written at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

import httpx
from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from gateway.bootstrap import Hub
from gateway.services.errors import Conflict, Invalid, NotFound
from gateway.store.audit import append
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, OutboxMessage

__all__ = [
    "DISABLED",
    "ConnectorDisabled",
    "DeadLetter",
    "Delivered",
    "Undeliverable",
    "audit_delivered",
    "enabled_again",
    "held_back",
    "list_dead",
    "mark_dead",
    "mark_succeeded",
    "replay",
    "replay_connector",
]

logger = logging.getLogger(__name__)
MAX_LIMIT: Final = 500
DISABLED: Final = "connector_disabled"  # the reason of a webhook held for a disabled connector


class Undeliverable(Exception):
    """A delivery that cannot be attempted (disabled connector, unusable document or key)."""


class ConnectorDisabled(Undeliverable):
    """The delivery's connector is disabled: it waits, dead, until the connector is enabled."""

    def __init__(self, connector_id: str | None) -> None:
        super().__init__(
            f"connector {connector_id} is disabled (its endpoint answered 410 Gone), so nothing "
            f"was sent: enable it with POST /v1/connectors/{connector_id}/enable?replay=true, "
            "which sends this and its other dead letters in order"
        )


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
    audit_delivered(session, row, at=at, actor=actor)


def audit_delivered(
    session: Session | Connection, row: Delivered, *, at: datetime, actor: str
) -> None:
    """The "delivered" audit entry of a delivery that succeeded (ids and counts only)."""
    detail = {"delivery_id": row.id, "channel": row.channel, "attempts": row.attempts}
    append(
        session,
        at=at,
        action="delivered",
        actor=actor,
        escalation_id=row.escalation_id,
        detail=detail,
    )


class Delivered(Protocol):
    """What the audit entry of a succeeded delivery names."""

    @property
    def id(self) -> str: ...
    @property
    def escalation_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def attempts(self) -> int: ...


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
    """Dead deliveries, oldest first (then by id), a page at a time.

    Keyset paging: ``after`` is the last id of the previous page, and the page holds the dead
    letters after that delivery's (created_at, id), in one query. Any id is a position: one
    replayed since still is, and one that names no delivery is past the end (an empty page).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    query = select(Delivery).where(Delivery.status == "dead")
    if after is not None:
        cursor = aliased(Delivery)
        mark = select(cursor.created_at).where(cursor.id == after).scalar_subquery()
        query = query.where(
            or_(
                Delivery.created_at > mark,
                and_(Delivery.created_at == mark, Delivery.id > after),
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
        _audit_replay(session, row, at=now, actor=actor, replay=number)
    logger.info("delivery.replayed", extra={"delivery_id": delivery_id, "replay": number})


def replay_connector(session: Session, connector_id: str, *, at: datetime, actor: str) -> int:
    """Put every dead letter of the connector back to pending (the caller commits); how many.

    Each gets a "replay" audit entry; one "deliver" poke starts the connector's lane, which
    sends them all in ``seq`` order, before any row decided later.
    """
    query = (
        select(Delivery)
        .where(Delivery.connector_id == connector_id, Delivery.status == "dead")
        .order_by(Delivery.seq)
        .with_for_update()
    )
    rows = session.scalars(query).all()
    for row in rows:
        row.status, row.finished_at = "pending", None
        _audit_replay(session, row, at=at, actor=actor, connector_id=connector_id)
    if rows:
        _poke(session, rows[0].id, at=at)
    logger.info("delivery.connector_replay", extra={"connector_id": connector_id, "n": len(rows)})
    return len(rows)


def held_back(connector_id: str | None, *, at: datetime) -> dict[str, Any]:
    """The columns that make a new webhook for a disabled connector a dead letter at once
    (nothing is sent); enabling the connector with replay sends it in its place. No audit
    entry: the router appends its own last (the chain head is locked for the shortest time)."""
    return {
        "status": "dead",
        "finished_at": at,
        "last_error": str(ConnectorDisabled(connector_id)),
    }


def enabled_again(session: Session, row: Delivery) -> bool:
    """Whether the delivery's connector is active now: read under a share lock, so an enable
    committing meanwhile is waited for (and a dead letter written after it is replayed by it)."""
    query = select(Connector.status).where(Connector.id == row.connector_id)
    return session.scalar(query.with_for_update(read=True)) == "active"


def _audit_replay(
    session: Session, row: Delivery, *, at: datetime, actor: str, **detail: Any
) -> None:
    """The "replay" audit entry of a dead letter put back to pending."""
    append(
        session,
        at=at,
        action="replay",
        actor=actor,
        escalation_id=row.escalation_id,
        detail={"delivery_id": row.id, "channel": row.channel, **detail},
    )


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
            "administrator disabled it): re-enable it, then replay this delivery; "
            "POST /v1/connectors/{id}/enable?replay=true does both for all its dead letters, "
            "in order",
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
