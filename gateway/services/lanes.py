"""Delivery lanes in the database: which process sends a target's deliveries, and in what order.

A lane is one target: a connector (``connector:{id}``), or a mailbox (``email:{address}``,
the address exactly as stored: SQL and Python disagree on case-folding beyond ASCII).
Its deliveries go out one at a time in ``Delivery.seq`` order, by the one delivery process
holding the lane's lease in ``delivery_lanes``. A lease is taken with a conditional write that
only succeeds while the lane is free, expired, or already this holder's (``INSERT ... ON
CONFLICT DO NOTHING`` for a new lane, then ``UPDATE ... WHERE``): race-safe on PostgreSQL
(row locks) and SQLite (one writer at a time). A holder that dies stops renewing; its lease
expires and another process takes the lane over.

Lease times come from the delivery processes' own clocks (keep hosts on NTP; the lease is tens
of seconds, clock skew should be well under one).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from gateway.store.models import Delivery, DeliveryLane

__all__ = ["LaneLeases", "lane_key", "pending_in", "shown"]

_CONNECTOR = "connector"


def lane_key(channel: str, connector_id: str | None, target: str) -> str:
    """The lane of a delivery: its connector, else its channel and exact target (address)."""
    if connector_id:
        return f"{_CONNECTOR}:{connector_id}"
    return f"{channel}:{target}"


def shown(lane: str) -> str:
    """The lane as logs may show it: a connector id, or a mailbox's kind and a short hash."""
    kind, _, rest = lane.partition(":")
    if kind == _CONNECTOR:
        return lane
    return f"{kind}:{hashlib.sha256(rest.encode()).hexdigest()[:12]}"


def pending_in(lane: str) -> ColumnElement[bool]:
    """The SQL condition for the pending deliveries of ``lane``."""
    kind, _, rest = lane.partition(":")
    pending = Delivery.status == "pending"
    if kind == _CONNECTOR:
        return and_(pending, Delivery.connector_id == rest)
    return and_(
        pending, Delivery.channel == kind, Delivery.connector_id.is_(None), Delivery.target == rest
    )


class LaneLeases:
    """One dispatcher's leases on lanes (``holder``), and the pending rows of its lanes."""

    def __init__(
        self,
        engine: Engine,
        *,
        holder: str,
        seconds: float,
        clock: Callable[[], datetime],
        reader: Engine | None = None,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"a lane lease must last a positive time, not {seconds} s")
        self.holder = holder
        self.seconds = seconds
        self._engine = engine
        self._reader = reader or engine  # lookups that only read (store.db.reader)
        self._clock = clock
        self._until: dict[str, datetime] = {}  # our leases as last written
        self._lock = threading.Lock()

    def acquire(self, lane: str) -> bool:
        """Take the lane if it is free, expired or already ours; False if another holds it."""
        if self._fresh(lane):
            return True
        now = self._clock()
        until = now + timedelta(seconds=self.seconds)
        with self._engine.begin() as conn:
            taken = conn.execute(
                update(DeliveryLane)
                .where(DeliveryLane.target == lane, self._takeable(now))
                .values(holder=self.holder, lease_until=until)
            ).rowcount
            if taken != 1:
                values = {"target": lane, "holder": self.holder, "lease_until": until}
                created = conn.execute(self._insert_new(values).returning(DeliveryLane.target))
                taken = 0 if created.first() is None else 1  # 1: a lane never seen before
        if taken == 1:
            self._note({lane: until})
        return taken == 1

    def renew(self, lanes: Collection[str]) -> set[str]:
        """Extend our leases on ``lanes``; the lanes among them we no longer hold."""
        wanted = set(lanes)
        if not wanted:
            return set()
        until = self._clock() + timedelta(seconds=self.seconds)
        ours = and_(DeliveryLane.target.in_(sorted(wanted)), DeliveryLane.holder == self.holder)
        with self._engine.begin() as conn:
            renewed = conn.execute(update(DeliveryLane).where(ours).values(lease_until=until))
            lost = set()
            if renewed.rowcount != len(wanted):
                lost = wanted - set(conn.scalars(select(DeliveryLane.target).where(ours)))
        self._note({lane: until for lane in wanted - lost}, forget=lost)
        return lost

    def holds(self, lane: str) -> bool:
        """Whether we still hold ``lane`` (checked before every send): from memory while well
        within our last write of the lease, else renewed in the database."""
        return self._fresh(lane) or not self.renew([lane])

    def release(self, lanes: Collection[str]) -> None:
        """Give ``lanes`` up (only those we hold), so any process may take them at once."""
        if not lanes:
            return
        self._note({}, forget=lanes)
        with self._engine.begin() as conn:
            conn.execute(
                update(DeliveryLane)
                .where(DeliveryLane.target.in_(list(lanes)), DeliveryLane.holder == self.holder)
                .values(holder=None, lease_until=None)
            )

    def void_others(self) -> int:
        """Free every lease of other holders (embedded start-up: they were this process's
        earlier lives); how many."""
        with self._engine.begin() as conn:
            return conn.execute(
                update(DeliveryLane)
                .where(DeliveryLane.holder.is_not(None), DeliveryLane.holder != self.holder)
                .values(holder=None, lease_until=None)
            ).rowcount

    def next_pending(self, lane: str) -> str | None:
        """The id of the lane's pending delivery with the lowest ``seq``, or None."""
        query = select(Delivery.id).where(pending_in(lane)).order_by(Delivery.seq).limit(1)
        with self._reader.connect() as conn:
            return conn.scalar(query)

    def lane_of(self, delivery_id: str) -> str | None:
        """The lane of a stored delivery, or None when there is no such delivery."""
        query = select(Delivery.channel, Delivery.connector_id, Delivery.target).where(
            Delivery.id == delivery_id
        )
        with self._reader.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else lane_key(row.channel, row.connector_id, row.target)

    def claimable(self) -> dict[str, int]:
        """Lanes with pending deliveries and no live lease of another holder: pending counts."""
        pending = (
            select(Delivery.channel, Delivery.connector_id, Delivery.target, func.count())
            .where(Delivery.status == "pending")
            .group_by(Delivery.channel, Delivery.connector_id, Delivery.target)
        )
        busy = select(DeliveryLane.target).where(
            DeliveryLane.holder.is_not(None),
            DeliveryLane.holder != self.holder,
            DeliveryLane.lease_until >= self._clock(),
        )
        with self._reader.connect() as conn:
            counts: dict[str, int] = {}
            for channel, connector_id, target, n in conn.execute(pending):
                lane = lane_key(channel, connector_id, target)
                counts[lane] = counts.get(lane, 0) + int(n)
            held_elsewhere = set(conn.scalars(busy)) if counts else set()
        return {lane: n for lane, n in counts.items() if lane not in held_elsewhere}

    def _fresh(self, lane: str) -> bool:
        """Whether our lease on ``lane`` has more than half its length left (no one else can
        have taken it, clock skew aside)."""
        with self._lock:
            until = self._until.get(lane)
        left = None if until is None else (until - self._clock()).total_seconds()
        return left is not None and left > self.seconds / 2

    def _note(self, leases: dict[str, datetime], *, forget: Collection[str] = ()) -> None:
        with self._lock:
            self._until.update(leases)
            for lane in forget:
                self._until.pop(lane, None)

    def _takeable(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            DeliveryLane.holder.is_(None),
            DeliveryLane.lease_until.is_(None),
            DeliveryLane.lease_until < now,
            DeliveryLane.holder == self.holder,
        )

    def _insert_new(self, values: dict[str, object]) -> postgresql.Insert | sqlite.Insert:
        """INSERT the lane unless it exists (both stores speak ON CONFLICT DO NOTHING)."""
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(DeliveryLane).values(values).on_conflict_do_nothing()
        return sqlite.insert(DeliveryLane).values(values).on_conflict_do_nothing()
