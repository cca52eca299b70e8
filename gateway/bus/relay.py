"""The transactional outbox relay: database rows out to the bus, marked once confirmed.

A row is marked ``published_at`` only after ``Publisher.publish`` returned, which is after
the broker confirmed it; marks commit with the claiming transaction. A crash between
publishing and committing publishes those rows again (a duplicate, which consumers drop by
message id), never loses one. A failed publish stops the batch there, so later rows never
overtake an earlier one; the rows already confirmed are still marked.

Several relays may run against PostgreSQL: each claims its batch with
``SELECT ... FOR UPDATE SKIP LOCKED``, so no two publish the same rows at the same time
(batches of different relays may interleave on the bus; per-escalation order rests on the
event sequence numbers). On SQLite the clause is dropped and ``BEGIN IMMEDIATE`` serialises
relays, holding the write lock while a batch is published (fast on the memory transport).

Messages that only say "look at X now" are coalesced within a batch (``COALESCE_BY``): a
``decide`` message makes the router decide every undecided event of its escalation, and a
``deliver`` message makes a delivery process work its whole lane, both read from the
database. Of several unpublished ones for the same escalation (or lane), only the newest is
published; the others are marked with it. Under load this cuts the broker's work (one
confirmed publish per escalation per batch, not per event) and changes nothing a consumer
does. A failed publish still stops the batch: a row marked as superseded before it stands
for a newer row that stays unpublished and goes out in a later pass.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.bus.publisher import BusUnavailable, Publisher
from gateway.metrics import OUTBOX_COALESCED, OUTBOX_PENDING
from gateway.store.db import transaction
from gateway.store.models import OutboxMessage

__all__ = ["COALESCE_BY", "Relay", "pending_count", "relay_once"]

logger = logging.getLogger(__name__)

#: topic -> the payload field naming what a message asks its consumer to look at again
COALESCE_BY: Final[dict[str, str]] = {"decide": "escalation_id", "deliver": "lane"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def relay_once(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    *,
    batch: int = 200,
    clock: Callable[[], datetime] = _utc_now,
) -> int:
    """Publish up to ``batch`` unpublished rows in pk order; return how many were marked
    (confirmed by the broker, or stood in for by a newer confirmed one)."""
    published = 0
    failure: BusUnavailable | None = None
    with transaction(sessions) as session:
        rows = _claim(session, publisher.topics, batch)
        superseded = _superseded(rows)
        for row in rows:
            if row.pk in superseded:
                row.published_at = clock()
                published += 1
                OUTBOX_COALESCED.labels(row.topic).inc()
                continue
            try:
                publisher.publish(
                    row.topic,
                    message_id=row.message_id,
                    routing_hint=row.routing_key,
                    payload=row.payload,
                )
            except BusUnavailable as exc:
                failure = exc
                break
            row.published_at = clock()
            published += 1
    if failure is not None:
        raise failure
    return published


def _superseded(rows: Sequence[OutboxMessage]) -> set[int]:
    """The pks of rows a newer row of the batch stands in for (see ``COALESCE_BY``)."""
    newest: dict[tuple[str, str], int] = {}
    keyed: list[tuple[tuple[str, str], int]] = []
    for row in rows:  # in pk order: the last one seen for a key is the newest
        field = COALESCE_BY.get(row.topic)
        value = row.payload.get(field) if field and isinstance(row.payload, dict) else None
        if isinstance(value, str):
            newest[(row.topic, value)] = row.pk
            keyed.append(((row.topic, value), row.pk))
    return {pk for key, pk in keyed if newest[key] != pk}


def pending_count(sessions: sessionmaker[Session]) -> int:
    """How many outbox rows are not yet confirmed by the broker."""
    with transaction(sessions) as session:
        count = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.published_at.is_(None))
        )
    return int(count or 0)


def _claim(session: Session, topics: frozenset[str], batch: int) -> Sequence[OutboxMessage]:
    """The oldest unpublished rows the bus can route, locked against other relays."""
    statement = (
        select(OutboxMessage)
        .where(OutboxMessage.published_at.is_(None), OutboxMessage.topic.in_(sorted(topics)))
        .order_by(OutboxMessage.pk)
        .limit(batch)
        .with_for_update(skip_locked=True)  # SQLite renders nothing: BEGIN IMMEDIATE serialises
    )
    return session.scalars(statement).all()


class Relay:
    """Runs ``relay_once`` on a thread: every ``interval``, at once after ``notify()``."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        interval: float = 0.2,
        batch: int = 200,
        backoff_max: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.sessions = sessions
        self.publisher = publisher
        self.interval = interval
        self.batch = batch
        self.backoff_max = backoff_max
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down: str | None = None
        self._failures = 0

    def notify(self) -> None:
        """Something was committed to the outbox: relay now (ignored while the broker is down;
        it ends a wait after a database outage, since that commit succeeded)."""
        self._wake.set()

    def start(self) -> threading.Thread:
        """Start the relay thread (a daemon) and return it."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="eh-outbox-relay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the current batch and wait for the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """The loop: relay, then sleep until the interval passes or ``notify()``."""
        while not self._stop.is_set():
            try:
                delay = self.tick()
            except Exception as exc:  # noqa: BLE001 - the relay's outermost loop
                frames = "".join(traceback.format_tb(exc.__traceback__))
                logger.error("relay.crashed", extra={"error": type(exc).__name__, "frames": frames})
                delay = self._back_off("unexpected", exc)
            if self._down == "broker":  # a commit says nothing of the broker: wait it out
                self._stop.wait(delay)
                continue
            # Idle, or the database was away: a notify() means a commit just succeeded, so
            # the database is back and there is something to publish: go at once.
            self._wake.wait(delay)
            self._wake.clear()

    def tick(self) -> float:
        """One pass; returns the seconds to wait before the next."""
        try:
            published = relay_once(
                self.sessions, self.publisher, batch=self.batch, clock=self.clock
            )
        except BusUnavailable as exc:
            self._update_pending()
            return self._back_off("broker", exc)
        except SQLAlchemyError as exc:
            return self._back_off("database", exc)
        if self._down is not None:
            logger.info("relay.recovered", extra={"was_down": self._down, "tries": self._failures})
            self._down, self._failures = None, 0
        self.publisher.keepalive()
        if published:
            self._update_pending()
        return 0.0 if published >= self.batch else self.interval

    def _back_off(self, what: str, exc: BaseException) -> float:
        if self._down != what:
            logger.warning("relay.outage", extra={"down": what, "error": type(exc).__name__})
        self._down = what
        self._failures += 1
        return float(min(self.backoff_max, self.interval * 2 ** min(self._failures, 30)))

    def _update_pending(self) -> None:
        try:
            OUTBOX_PENDING.set(pending_count(self.sessions))
        except SQLAlchemyError:
            return
