"""The deadline scheduler: due deadlines become events on the same path as agency actions.

``sweep`` reads the ``deadlines`` index (``ix_deadlines_notice`` for notices, ``ix_deadlines_due``
for breaches; never a scan of open escalations), and for each deadline that is due stores a
``deadline_approaching`` or ``deadline_breached`` event with the escalation's next sequence
number and a ``decide`` outbox row, one transaction per batch. A deadline whose escalation has a
deadline event the router has not decided yet is left out of the batch (so what was fed is not
fed again, and cannot crowd later deadlines out); the event id is derived from the deadline and
its due instant, so a repeat is a duplicate and skipped in any case. ``DeadlineRow.state`` is
changed only by the router (its effects sync), when it decides those events.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Exists, Select, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from gateway.bootstrap import Hub
from gateway.metrics import SCHEDULED
from gateway.services.event_rows import record_event
from gateway.store.db import transaction
from gateway.store.models import DeadlineRow, EscalationRow, InboundEvent
from schemas.envelope import DeadlineApproaching, DeadlineBreached, EventType
from schemas.escalation import Deadline, DeadlineState, Escalation
from schemas.facts import DeadlineData
from security.errors import SecurityError

__all__ = ["SCHEDULER_SOURCE", "Scheduler", "due_query", "notice_query", "sweep"]

SCHEDULER_SOURCE = "urn:escalation-hub:scheduler"
_OPEN = (DeadlineState.PENDING.value, DeadlineState.APPROACHING.value)
_MAY_FEED = {"approaching": (DeadlineState.PENDING.value,), "breached": _OPEN}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Due:
    """One deadline to announce: which one, and whether it is approaching or breached."""

    escalation_id: str
    deadline_id: str
    kind: str  # "approaching" | "breached"
    at: datetime  # the instant that made it due (notice_at or due)


def notice_query(now: datetime, limit: int) -> Select[str, str, datetime | None]:
    """Pending deadlines whose notice time has come but not their due time (through
    ``ix_deadlines_notice``): a deadline already due is announced as breached only."""
    return (
        select(DeadlineRow.escalation_id, DeadlineRow.deadline_id, DeadlineRow.notice_at)
        .where(DeadlineRow.notice_at <= now, DeadlineRow.due > now)
        .where(DeadlineRow.state == DeadlineState.PENDING.value)
        .where(~_waiting_for_router())
        .order_by(DeadlineRow.notice_at)
        .limit(limit)
    )


def due_query(now: datetime, limit: int) -> Select[str, str, datetime]:
    """Unbreached deadlines whose due time has passed (through ``ix_deadlines_due``)."""
    return (
        select(DeadlineRow.escalation_id, DeadlineRow.deadline_id, DeadlineRow.due)
        .where(DeadlineRow.due <= now, DeadlineRow.state.in_(_OPEN))
        .where(~_waiting_for_router())
        .order_by(DeadlineRow.due)
        .limit(limit)
    )


def _waiting_for_router() -> Exists:
    """The deadline's escalation has a deadline event the router has not decided yet: what
    was fed is not fed again, and it cannot crowd later deadlines out of the batch."""
    return (
        select(InboundEvent.pk)
        .where(
            InboundEvent.escalation_id == DeadlineRow.escalation_id,
            InboundEvent.source == SCHEDULER_SOURCE,
            InboundEvent.decided_at.is_(None),
        )
        .exists()
    )


def sweep(hub: Hub, *, now: datetime, limit: int = 500) -> int:
    """Feed the router every deadline due at ``now`` (at most ``limit``); return how many."""
    fed: list[str] = []
    with transaction(hub.sessions) as session:
        for item in _due_items(session, now, limit):
            kind = _feed(session, hub, item, now)
            if kind is not None:
                fed.append(kind)
    for kind in fed:
        SCHEDULED.labels(kind=kind).inc()
    if fed:
        logger.info("scheduler.fed", extra={"n": len(fed)})
    return len(fed)


def _due_items(session: Session, now: datetime, limit: int) -> list[_Due]:
    """The earliest ``limit`` breaches and notices together."""
    breached = [_Due(e, d, "breached", at) for e, d, at in session.execute(due_query(now, limit))]
    notices = [
        _Due(e, d, "approaching", at)
        for e, d, at in session.execute(notice_query(now, limit))
        if at is not None
    ]
    items = sorted(breached + notices, key=lambda i: (i.at, i.escalation_id, i.deadline_id))
    # lock escalations in one global order so concurrent schedulers never deadlock
    return sorted(items[:limit], key=lambda i: (i.escalation_id, i.deadline_id))


def _feed(session: Session, hub: Hub, item: _Due, now: datetime) -> str | None:
    """Store the deadline event unless it exists or the deadline moved; return its kind."""
    row = session.scalars(
        select(EscalationRow).where(EscalationRow.id == item.escalation_id).with_for_update()
    ).first()
    deadline = _current(hub, row, item)
    if row is None or deadline is None or deadline.state.value not in _MAY_FEED[item.kind]:
        return None  # gone, moved on, or already decided: nothing to announce
    event = _event(item, deadline, now)
    if _exists(session, event.id):
        return None
    seq = row.next_seq
    session.flush()  # the Core writes below come after anything the session holds
    record_event(
        hub,
        session.connection(),
        escalation_id=row.id,
        seq=seq,
        event=event,
        connector_id=None,
        agency_id=None,
        now=hub.clock(),
    )
    set_committed_value(row, "next_seq", seq + 1)  # as written; a later item may lock it again
    return item.kind


def _current(hub: Hub, row: EscalationRow | None, item: _Due) -> Deadline | None:
    """The deadline as the (locked) state holds it; None if it is gone or unreadable."""
    if row is None or row.state_sealed is None:
        return None
    try:
        state = Escalation.model_validate(
            hub.sealer.unseal(row.state_sealed, context=f"escalation:{row.id}")
        )
    except (SecurityError, ValueError) as exc:
        logger.error(
            "scheduler.unreadable_state",
            extra={"escalation_id": row.id, "error": type(exc).__name__},
        )
        return None
    return state.deadline(item.deadline_id)


def _event(item: _Due, deadline: Deadline, now: datetime) -> DeadlineApproaching | DeadlineBreached:
    data = DeadlineData(
        deadline_id=deadline.id,
        kind=deadline.kind,
        stage=deadline.stage,
        tier=deadline.tier,
        due=deadline.due,
    )
    due = deadline.due.astimezone(UTC)
    event_id = f"{item.escalation_id}/{deadline.id}/{item.kind}/{due:%Y%m%dT%H%M%SZ}"
    if item.kind == "approaching":
        return DeadlineApproaching(
            type=EventType.DEADLINE_APPROACHING,
            id=event_id,
            source=SCHEDULER_SOURCE,
            time=now,
            subject=item.escalation_id,
            data=data,
        )
    return DeadlineBreached(
        type=EventType.DEADLINE_BREACHED,
        id=event_id,
        source=SCHEDULER_SOURCE,
        time=now,
        subject=item.escalation_id,
        data=data,
    )


def _exists(session: Session, event_id: str) -> bool:
    query = select(InboundEvent.pk).where(
        InboundEvent.source == SCHEDULER_SOURCE, InboundEvent.event_id == event_id
    )
    return session.scalar(query) is not None


class Scheduler:
    """Sweeps every ``Settings.scheduler_interval`` seconds on a thread until stopped."""

    def __init__(self, hub: Hub, *, interval: float | None = None, limit: int = 500) -> None:
        self._hub = hub
        self._interval = interval if interval is not None else hub.settings.scheduler_interval
        self._limit = limit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the sweeping thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="eh-scheduler", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the loop to stop and wait for the sweep in progress to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Sweep until stopped; a full batch is followed at once by the next one."""
        logger.info("scheduler.started", extra={"interval": self._interval})
        while not self._stop.is_set():
            fed = self.sweep_once()
            if fed < self._limit:
                self._stop.wait(self._interval)
        logger.info("scheduler.stopped")

    def sweep_once(self) -> int:
        """One sweep at the hub's clock; errors are logged and the loop carries on."""
        try:
            return sweep(self._hub, now=self._hub.clock(), limit=self._limit)
        except SQLAlchemyError as exc:
            logger.warning("scheduler.store_unavailable", extra={"error": type(exc).__name__})
        except Exception as exc:  # noqa: BLE001 (a worker's outermost loop: log, keep sweeping)
            frames = traceback.format_tb(exc.__traceback__)  # no message: it may quote data
            logger.error(
                "scheduler.sweep_failed", extra={"error": type(exc).__name__, "frames": frames}
            )
        return 0
