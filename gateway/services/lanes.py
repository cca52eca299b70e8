"""Delivery lanes in the database: which process sends a target's deliveries, and in what order.

A lane is one target: a connector (``connector:{id}``), or a mailbox (``email:{address}``,
the address exactly as stored: SQL and Python disagree on case-folding beyond ASCII).
Its deliveries go out one at a time in ``Delivery.seq`` order, by the one delivery process
holding the lane's lease in ``delivery_lanes``. A lease is taken with a conditional write that
only succeeds while the lane is free, expired, or already this holder's (``INSERT ... ON
CONFLICT DO NOTHING`` for a new lane, then ``UPDATE ... WHERE``): race-safe on PostgreSQL
(row locks) and SQLite (one writer at a time). A holder that dies stops renewing; its lease
expires and another process takes the lane over.

A process poked for a lane another holds may ask for it (``want``); the holder, once it has held
a wanted lane for ``quantum`` seconds, hands the lease over between two deliveries
(``hand_over``), so the lanes spread over the delivery processes (``gateway.services.lane_wants``).

Lease times come from the delivery processes' own clocks (keep hosts on NTP; the lease is tens
of seconds, clock skew should be well under one).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from gateway.services import lane_wants
from gateway.services.lane_wants import QUANTUM_SECONDS, WANT_SECONDS
from gateway.store.db import insert_or_nothing
from gateway.store.models import Delivery, DeliveryLane

__all__ = ["QUANTUM_SECONDS", "WANT_SECONDS", "LaneLeases", "lane_key", "pending_in", "shown"]

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
        quantum: float = QUANTUM_SECONDS,
        want_seconds: float = WANT_SECONDS,
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"a lane lease must last a positive time, not {seconds} s")
        if want_seconds <= 0:
            raise ValueError(f"a want must last a positive time, not {want_seconds} s")
        self.holder = holder
        self.seconds = seconds
        self.quantum = quantum
        self.want_seconds = want_seconds
        self._engine = engine
        self._reader = reader or engine  # lookups that only read (store.db.reader)
        self._clock = clock
        self._until: dict[str, datetime] = {}  # our leases as last written
        self._since: dict[str, datetime] = {}  # when we took each of them
        self._wanted: set[str] = set()  # ours that another process asked for, at the last look
        self._lock = threading.Lock()
        self._handing = threading.Lock()  # one hand-over at a time: each counts the last one

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
                .values(holder=self.holder, lease_until=until, **lane_wants.ours_taken(self.holder))
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
        self._note({lane: until for lane in wanted - lost}, forget=lost, known_only=True)
        return lost

    def holds(self, lane: str) -> bool:
        """Whether we still hold ``lane`` (checked before every send): from memory while well
        within our last write of the lease, else renewed in the database."""
        return self._fresh(lane) or not self.renew([lane])

    def release(self, lanes: Collection[str]) -> None:
        """Give ``lanes`` up (only those we hold), so any process may take them at once; a want
        on them goes too (a wanter takes a free lane as it finds it)."""
        if not lanes:
            return
        self._note({}, forget=lanes)
        with self._engine.begin() as conn:
            conn.execute(
                update(DeliveryLane)
                .where(DeliveryLane.target.in_(list(lanes)), DeliveryLane.holder == self.holder)
                .values(holder=None, lease_until=None, wanted_by=None, wanted_until=None)
            )

    def void_others(self) -> int:
        """Free every lease, and drop every want, of other holders (embedded start-up: they
        were this process's earlier lives); how many leases."""
        others = and_(DeliveryLane.holder.is_not(None), DeliveryLane.holder != self.holder)
        wants = and_(DeliveryLane.wanted_by.is_not(None), DeliveryLane.wanted_by != self.holder)
        with self._engine.begin() as conn:
            voided = conn.execute(
                update(DeliveryLane).where(others).values(holder=None, lease_until=None)
            ).rowcount
            conn.execute(
                update(DeliveryLane).where(wants).values(wanted_by=None, wanted_until=None)
            )
        return voided

    def want(self, lane: str) -> bool:
        """Ask for ``lane``: True if asked (to be written again while we wait, then withdrawn),
        False if its holder has not two lanes more than we do, or another asks for it."""
        now = self._clock()
        until = now + timedelta(seconds=self.want_seconds)
        with self._engine.begin() as conn:
            asked = conn.execute(lane_wants.ask(lane, self.holder, now=now, until=until))
        return asked.rowcount == 1

    def unwant(self, lanes: Collection[str]) -> None:
        """Withdraw our wants on ``lanes``: from now on none of them is handed to us."""
        if lanes:
            with self._engine.begin() as conn:
                conn.execute(lane_wants.withdraw(lanes, self.holder))

    def look_for_wants(self, lanes: Collection[str]) -> set[str]:
        """Which of our ``lanes`` another process asks for now (a read, noted for hand-overs)."""
        if not lanes:
            return set()
        query = select(DeliveryLane.target).where(
            DeliveryLane.target.in_(sorted(lanes)),
            DeliveryLane.holder == self.holder,
            lane_wants.live_want(self.holder, self._clock()),
        )
        with self._reader.connect() as conn:
            wanted = set(conn.scalars(query))
        with self._lock:
            self._wanted.difference_update(lanes)
            self._wanted.update(lane for lane in wanted if lane in self._until)
        return wanted

    def hand_over_due(self, lane: str) -> bool:
        """Whether ``lane`` was wanted at the last look and we have held it for a quantum."""
        with self._lock:
            since = self._since.get(lane) if lane in self._wanted else None
        return since is not None and (self._clock() - since).total_seconds() >= self.quantum

    def hand_over(self, lane: str) -> bool:
        """Make the process that asks for ``lane`` its holder, if its want is live and we still
        hold two lanes more; True if handed over. Only between two deliveries of the lane."""
        now = self._clock()
        # short: should the asker have died meanwhile, the lane is soon taken over
        until = now + timedelta(seconds=min(self.seconds, self.want_seconds))
        with self._lock:
            self._wanted.discard(lane)  # the next look finds it again if it is still wanted
        with self._handing, self._engine.begin() as conn:
            handed = conn.execute(
                lane_wants.hand_over(lane, self.holder, now=now, lease_until=until)
            ).rowcount
        if handed == 1:
            self._note({}, forget=[lane])
        return handed == 1

    def takeable(self, lanes: Collection[str]) -> set[str]:
        """Which of ``lanes`` are free, expired or ours (handed to us) now: a read."""
        if not lanes:
            return set()
        query = select(DeliveryLane.target).where(
            DeliveryLane.target.in_(sorted(lanes)), self._takeable(self._clock())
        )
        with self._reader.connect() as conn:
            return set(conn.scalars(query))

    def held_since(self, lane: str) -> datetime | None:
        """When we took our current lease on ``lane`` (None if we hold none): a new value
        means the lane was given up or lost in between."""
        with self._lock:
            return self._since.get(lane)

    def next_pending(self, lane: str) -> str | None:
        """The id of the lane's pending delivery with the lowest ``seq``, or None."""
        found = self.pending_ids(lane, 1)
        return found[0] if found else None

    def pending_ids(self, lane: str, limit: int) -> list[str]:
        """The ids of the lane's first ``limit`` pending deliveries, in ``seq`` order."""
        query = select(Delivery.id).where(pending_in(lane)).order_by(Delivery.seq).limit(limit)
        with self._reader.connect() as conn:
            return list(conn.scalars(query))

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

    def _note(
        self,
        leases: dict[str, datetime],
        *,
        forget: Collection[str] = (),
        known_only: bool = False,
    ) -> None:
        """Remember our leases as written, forget those let go. ``known_only`` (a renewal):
        never bring back one forgotten while the renewal ran (given back, or handed over)."""
        length = timedelta(seconds=self.seconds)
        with self._lock:
            for lane, until in leases.items():
                if known_only and lane not in self._until:
                    continue
                self._since.setdefault(lane, until - length)
                self._until[lane] = until
            for lane in forget:
                self._until.pop(lane, None)
                self._since.pop(lane, None)
                self._wanted.discard(lane)

    def _takeable(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            DeliveryLane.holder.is_(None),
            DeliveryLane.lease_until.is_(None),
            DeliveryLane.lease_until < now,
            DeliveryLane.holder == self.holder,
        )

    def _insert_new(self, values: dict[str, object]) -> Any:
        """INSERT the lane unless it exists."""
        return insert_or_nothing(DeliveryLane, self._engine.dialect.name).values(values)
