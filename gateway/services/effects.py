"""A decision's effects as rows, in the decision's own transaction (the transactional outbox).

* Deadlines: the ``deadlines`` table mirrors the new state's deadlines
  (``deadline_rows.sync_deadlines``).
* ``StageUpdate``: one webhook Delivery per connector of the recipient agency, id
  ``{update_id}:{connector_id}`` (stable: the receiver's de-duplication key).
* ``Notification``: a NotificationRow; for the business office a webhook Delivery per
  connector of each business office of the partnership and an email Delivery to its
  ``notify_email``; for any other recipient (IRO, designated lead...) a webhook Delivery to
  the connectors of the party it names (``recipient_agency_id``), or else of every party,
  whose case systems route it to that role.

Every Delivery holds its document sealed (context ``delivery:{id}``). One for an active
connector is pending and has a ``deliver`` outbox row. One for a connector that is not active
(disabled after its endpoint answered 410 Gone) is stored as a dead letter at once, nothing
sent (``deadletters.hold_back``): enabling the connector with replay sends it in its order, so
nothing decided while a party's connector was disabled is lost. A delivery that already
exists is left alone (effects happen once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.services import deadletters
from gateway.services.deadline_rows import sync_deadlines
from gateway.services.lanes import lane_key
from gateway.store.models import (
    Agency,
    Connector,
    Delivery,
    EscalationRow,
    NotificationRow,
    OutboxMessage,
    Party,
)
from router.decision import Decision
from schemas.procedure import Recipient
from schemas.updates import Notification, StageUpdate

__all__ = ["BUSINESS_OFFICE_KIND", "apply_effects"]

BUSINESS_OFFICE_KIND = "business_office"

logger = logging.getLogger(__name__)


def apply_effects(session: Session, hub: Hub, row: EscalationRow, decision: Decision) -> None:
    """Write ``decision``'s effects for ``row`` into ``session`` (the caller commits)."""
    now = hub.clock()
    if decision.escalation is not None:
        sync_deadlines(session, row.id, decision)
    outbox = _Outbox(session, hub, row.id, now)
    updates = [e for e in decision.effects if isinstance(e, StageUpdate)]
    references: dict[str, str] = {}
    by_agency: dict[str, list[_Recipient]] = {}
    if updates:  # one read each for the references and the connectors of every recipient
        references = _references(session, row.id, updates)
        by_agency = _by_agency(_connectors(session, [u.recipient_agency_id for u in updates]))
    for effect in decision.effects:
        if isinstance(effect, StageUpdate):
            update = _with_reference(effect, references)
            outbox.webhooks(update.update_id, update, by_agency.get(update.recipient_agency_id, []))
        elif isinstance(effect, Notification):
            _notify(session, outbox, effect, now)
    outbox.flush()
    if outbox.count:
        logger.info("effects.deliveries", extra={"escalation_id": row.id, "n": outbox.count})
    if outbox.held:
        logger.warning("effects.held_back", extra={"escalation_id": row.id, "n": outbox.held})


def _references(
    session: Session, escalation_id: str, updates: Sequence[StageUpdate]
) -> dict[str, str]:
    """The case references the hub knows for the updates' recipients lacking one."""
    missing = {u.recipient_agency_id for u in updates if u.recipient_case_reference is None}
    if not missing:
        return {}
    query = select(Party.agency_id, Party.case_reference).where(
        Party.escalation_id == escalation_id,
        Party.agency_id.in_(sorted(missing)),
        Party.case_reference.is_not(None),
    )
    return {agency: ref for agency, ref in session.execute(query) if ref is not None}


def _with_reference(update: StageUpdate, references: Mapping[str, str]) -> StageUpdate:
    """Fill a case reference the hub learnt after the raise (a party's first own action)."""
    if update.recipient_case_reference is not None:
        return update
    reference = references.get(update.recipient_agency_id)
    if reference is None:
        return update
    return update.model_copy(update={"recipient_case_reference": reference})


def _notify(session: Session, outbox: _Outbox, note: Notification, now: datetime) -> None:
    if session.get(NotificationRow, note.notification_id) is None:
        session.add(
            NotificationRow(
                id=note.notification_id,
                escalation_id=note.escalation_id,
                partnership=note.partnership,
                recipient=note.recipient.value,
                stage=note.stage,
                clause=note.clause,
                reason=note.reason,
                immediate=note.immediate,
                created_at=now,
            )
        )
    if note.recipient is not Recipient.BUSINESS_OFFICE:
        parties = select(Party.agency_id).where(Party.escalation_id == note.escalation_id)
        if note.recipient_agency_id is not None:  # one party's role-holder: that party alone
            parties = parties.where(Party.agency_id == note.recipient_agency_id)
        outbox.webhooks(note.notification_id, note, _connectors(session, session.scalars(parties)))
        return
    offices = _business_offices(session, note.partnership)
    if not offices:
        logger.warning("effects.no_business_office", extra={"partnership": note.partnership})
    outbox.webhooks(note.notification_id, note, _connectors(session, [o.id for o in offices]))
    for office in offices:
        if office.notify_email:
            delivery_id = f"{note.notification_id}:email:{office.id}"
            outbox.deliver(delivery_id, note, channel="email", target=office.notify_email)


def _business_offices(session: Session, partnership: str) -> list[Agency]:
    """The partnership's business offices (few rows: filtered here, portable across stores)."""
    query = select(Agency).where(Agency.kind == BUSINESS_OFFICE_KIND).order_by(Agency.id)
    return [
        a for a in session.scalars(query) if partnership in (a.partnerships or {}).get("ids", [])
    ]


@dataclass(frozen=True)
class _Recipient:
    """What a delivery needs of a recipient's connector."""

    id: str
    agency_id: str
    status: str
    callback_url: str


def _by_agency(connectors: Sequence[_Recipient]) -> dict[str, list[_Recipient]]:
    grouped: dict[str, list[_Recipient]] = {}
    for connector in connectors:  # in id order: each agency's list keeps it
        grouped.setdefault(connector.agency_id, []).append(connector)
    return grouped


def _connectors(session: Session, agency_ids: Iterable[str]) -> Sequence[_Recipient]:
    """Every connector of the agencies, by id. If one is not active, all are read again under a
    share lock: an enable committing meanwhile is waited for and seen, so its replay can never
    miss a dead letter this decision holds back."""
    ids = sorted(set(agency_ids))
    if not ids:
        return []
    columns = (Connector.id, Connector.agency_id, Connector.status, Connector.callback_url)
    query = select(*columns).where(Connector.agency_id.in_(ids)).order_by(Connector.id)
    conn = session.connection()  # Core rows: the ORM's entities cost more than the read
    found = [_Recipient(*row) for row in conn.execute(query)]
    if all(connector.status == "active" for connector in found):
        return found
    return [_Recipient(*row) for row in conn.execute(query.with_for_update(read=True))]


@dataclass(frozen=True)
class _Planned:
    delivery_id: str
    document: StageUpdate | Notification
    channel: str
    target: str
    connector_id: str | None
    held: bool


class _Outbox:
    """Deliveries and their ``deliver`` outbox rows for one decision, written by ``flush()``
    (one query finds those that exist already: effects happen once)."""

    def __init__(self, session: Session, hub: Hub, escalation_id: str, now: datetime) -> None:
        self.session, self.hub, self.escalation_id, self.now = session, hub, escalation_id, now
        self.count = 0
        self.held = 0
        self._planned: dict[str, _Planned] = {}

    def webhooks(
        self, base_id: str, document: StageUpdate | Notification, to: Sequence[_Recipient]
    ) -> None:
        for connector in to:
            self.deliver(
                f"{base_id}:{connector.id}",
                document,
                channel="webhook",
                target=connector.callback_url,
                connector_id=connector.id,
                held=connector.status != "active",
            )

    def deliver(
        self,
        delivery_id: str,
        document: StageUpdate | Notification,
        *,
        channel: str,
        target: str,
        connector_id: str | None = None,
        held: bool = False,
    ) -> None:
        """Plan a delivery and its poke; ``held``: a dead letter at once, and no poke."""
        planned = _Planned(delivery_id, document, channel, target, connector_id, held)
        self._planned.setdefault(delivery_id, planned)

    def flush(self) -> None:
        """Store every planned delivery that does not exist yet, in the order planned (Core,
        one statement each for the check, the deliveries and their pokes)."""
        if not self._planned:
            return
        self.session.flush()  # the Core writes below come after the session's own
        conn = self.session.connection()
        ids = list(self._planned)
        existing = set(conn.scalars(select(Delivery.id).where(Delivery.id.in_(ids))))
        rows, pokes = [], []
        for delivery_id in ids:
            if delivery_id not in existing:
                row, poke = self._rows(self._planned[delivery_id])
                rows.append(row)
                if poke is not None:
                    pokes.append(poke)
        self._planned.clear()
        if rows:  # in order: one multi-row INSERT numbers them on (Delivery.seq)
            conn.execute(_INSERT_DELIVERY, rows)
        if pokes:
            conn.execute(_INSERT_OUTBOX, pokes)

    def _rows(self, planned: _Planned) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The delivery's row, and its ``deliver`` outbox row unless it is held back."""
        delivery_id = planned.delivery_id
        sealed = self.hub.sealer.seal(
            planned.document.model_dump(mode="json"), context=f"delivery:{delivery_id}"
        )
        row: dict[str, Any] = {
            "id": delivery_id,
            "escalation_id": self.escalation_id,
            "connector_id": planned.connector_id,
            "channel": planned.channel,
            "target": planned.target,
            "document_sealed": sealed,
            "status": "pending",
            "attempts": 0,
            "last_status": None,
            "last_error": None,
            "created_at": self.now,
            "finished_at": None,
        }
        if planned.held:
            row.update(deadletters.held_back(planned.connector_id, at=self.now))
            self.held += 1
            return row, None
        payload = {"delivery_id": delivery_id}
        if planned.connector_id is not None:  # a mailbox lane stays out of the bus (an address)
            payload["lane"] = lane_key(planned.channel, planned.connector_id, planned.target)
        self.count += 1
        poke = {
            "message_id": f"deliver:{delivery_id}",
            "topic": "deliver",
            "routing_key": "deliver",
            "payload": payload,
            "created_at": self.now,
            "published_at": None,
        }
        return row, poke


_INSERT_DELIVERY: Final = insert(Delivery)
_INSERT_OUTBOX: Final = insert(OutboxMessage)
