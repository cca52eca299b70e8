"""The lanes one process works: a task per lane on a thread pool, leases kept alive meanwhile.

``LaneWork.start(lane)`` leases the lane (``gateway.services.lanes``) and queues one task for
it; each task confirms the lease (else another process works the lane: leave it), notes it
for the keeper, runs one turn (the dispatcher's: send the lane's next delivery) and queues the
lane again behind the others, so lanes take turns on the pool. A lane already worked here is
only flagged ("poked"). When a turn finds the lane empty, its lease is given back and the lane
looked at once more; a poke that came in between sends it round again, so nothing committed
before a poke is ever left behind. A turn that fails (the store is away) waits, growing, and
tries again; it never drops the lane while this process lives.

A lane another process holds is asked for when worth it, and then kept here as "wanted"
(``gateway.services.lane_wanting``). A keeper thread looks every fraction of a second: it
renews the leases of every lane held here every ``renew_every`` seconds (also while a lane
waits), looks for wants on them (a wanted lane is handed over at the end of its next turn once
held for the quantum, never during a delivery), and looks again at the lanes wanted here.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Final, Protocol

from sqlalchemy.exc import SQLAlchemyError

from gateway.bus.consumer import is_transient
from gateway.services.lane_wanting import LaneState, Wanting
from gateway.services.lanes import LaneLeases, shown

__all__ = ["LaneWork", "Turn", "TurnFunction"]

logger = logging.getLogger(__name__)
_WAIT_INITIAL: Final = 0.5  # seconds before a failed turn is tried again, doubling
_WAIT_MAX: Final = 2.0
_LOOK_EVERY: Final = 0.25  # seconds between the keeper's looks for wants and hand-overs


class Turn(Enum):
    """How a lane's turn ended."""

    SENT = "sent"  # one delivery handled: queue the lane again
    EMPTY = "empty"  # nothing pending: give the lease back
    LOST = "lost"  # another process holds the lane: leave it to them (found before a turn)


class TurnFunction(Protocol):
    def __call__(self, lane: str) -> Turn: ...


class LaneWork(Wanting):
    """This process's lanes: leased in the database, worked one turn at a time on a pool."""

    def __init__(
        self,
        leases: LaneLeases,
        *,
        turn: TurnFunction,
        pool: ThreadPoolExecutor,
        stopping: threading.Event,
        renew_every: float,
    ) -> None:
        self._leases = leases
        self._turn = turn
        self._pool = pool
        self._stopping = stopping
        self._renew_every = renew_every
        self._cond = threading.Condition()
        self._lanes: dict[str, LaneState] = {}
        self._held: dict[str, int] = {}  # lane -> the acquisition it was held by
        self._acquisitions = itertools.count()
        self._keeper = threading.Thread(target=self._keep, name="eh-lane-leases", daemon=True)
        self._keeper.start()

    def start(self, lane: str) -> bool:
        """Lease and work ``lane`` here; False if it is worked or wanted here already, or held
        elsewhere."""
        with self._cond:
            if self._stopping.is_set():
                return False
            if lane in self._lanes:
                self._lanes[lane].poked = True
                return False
            self._lanes[lane] = LaneState()
        try:
            acquired = self._acquire_or_leave(lane, ask=True)
        except BaseException:
            self._drop(lane)
            raise
        if not acquired:
            logger.debug("delivery.lane_busy", extra={"lane": shown(lane)})
            return False
        return self._begin(lane)

    def _begin(self, lane: str) -> bool:
        """Work ``lane``, just leased here: queue its first turn (closing: give it back)."""
        with self._cond:
            self._hold(lane)
            if not self._stopping.is_set():
                self._pool.submit(self._run, lane)
                return True
            self._lanes.pop(lane, None)
            self._cond.notify_all()
        self._give_back([lane])  # closing: any process may take it at once
        return False

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no lane is worked or wanted here; False if the timeout came first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._lanes, timeout)

    def close(self) -> None:
        """Finish the turns under way, stop the keeper, give every lease back and withdraw
        every want."""
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        self._pool.shutdown(wait=True)
        self._keeper.join(timeout=30)
        with self._cond:
            held = list(self._held)
            self._held.clear()
            wanted = self._wanted_lanes()
            for lane in wanted:
                del self._lanes[lane]
            self._cond.notify_all()
        self._give_back(held, wanted=wanted)

    def _run(self, lane: str) -> None:
        """One turn of ``lane``, then what follows from it (the pool's task)."""
        try:
            turn = self._turn(lane) if self._confirm(lane) else Turn.LOST
            if turn is Turn.EMPTY and not self._finish(lane):
                return
            if turn is Turn.SENT and self._handed_over(lane):
                turn = Turn.LOST
            with self._cond:
                self._lanes[lane].failures = 0
        except Exception as exc:  # noqa: BLE001 - a lane's outermost loop: wait, try again
            if not self._wait_after(lane, exc):
                self._drop(lane)  # closing: close() gives the lease back
                return
            turn = Turn.SENT
        if turn is Turn.LOST:
            with self._cond:
                self._held.pop(lane, None)
            self._drop(lane)
            return
        with self._cond:
            if not self._stopping.is_set():
                self._pool.submit(self._run, lane)
                return
        self._drop(lane)

    def _finish(self, lane: str) -> bool:
        """Give the empty lane back; True if it has work again (and is ours again)."""
        self._leases.release([lane])
        with self._cond:
            self._held.pop(lane, None)
        while True:
            with self._cond:
                self._lanes[lane].poked = False
            if self._leases.next_pending(lane) is not None and self._leases.acquire(lane):
                with self._cond:
                    self._hold(lane)
                return True
            with self._cond:
                if not self._lanes[lane].poked or self._stopping.is_set():
                    del self._lanes[lane]
                    self._cond.notify_all()
                    return False

    def _wait_after(self, lane: str, exc: Exception) -> bool:
        """Log a failed turn and wait before the next; False if the dispatcher is closing."""
        with self._cond:
            state = self._lanes[lane]
            state.failures += 1
            failures = state.failures
        delay = min(_WAIT_MAX, _WAIT_INITIAL * 2 ** min(failures - 1, 10))
        fields = {"lane": shown(lane), "error": type(exc).__name__, "failures": failures}
        if is_transient(exc):
            log = logger.warning if failures == 1 else logger.debug
            log("delivery.lane_waiting", extra={**fields, "retry_in": delay})
        else:
            frames = "".join(traceback.format_tb(exc.__traceback__))
            logger.error("delivery.lane_failed", extra={**fields, "frames": frames})
        return not self._stopping.wait(delay)

    def _hold(self, lane: str) -> None:
        """Note that we hold ``lane`` (call with the condition held)."""
        self._held[lane] = next(self._acquisitions)

    def _confirm(self, lane: str) -> bool:
        """Take the lane's lease for a turn (free, expired or ours); False if another holds it.

        The keeper renews it from now on, also when the lease had been let go since it was
        first taken: by a give-back that then failed (the store went away), or as found lost.
        """
        if not self._leases.acquire(lane):
            return False
        with self._cond:
            if lane not in self._held:
                self._hold(lane)
        return True

    def _drop(self, lane: str) -> None:
        with self._cond:
            self._lanes.pop(lane, None)
            self._cond.notify_all()

    def _give_back(self, lanes: list[str], *, wanted: Collection[str] = ()) -> None:
        """Release ``lanes`` and withdraw our ``wanted`` ones (releasing those too: one may
        have been handed to us unseen)."""
        try:
            self._leases.unwant(wanted)
            self._leases.release([*lanes, *wanted])
        except SQLAlchemyError as exc:  # the leases and wants expire by themselves
            logger.warning(
                "delivery.lease_release_failed",
                extra={"error": type(exc).__name__, "lanes": len(lanes) + len(wanted)},
            )

    def _keep(self) -> None:
        """Until closing, every ``_LOOK_EVERY`` seconds: renew the leases held here when
        ``renew_every`` has passed, look for wants on them, look again at the lanes wanted
        here."""
        renew_at = time.monotonic() + self._renew_every
        while not self._stopping.wait(min(self._renew_every, _LOOK_EVERY)):
            with self._cond:
                held = dict(self._held)
                wanted = self._wanted_lanes()
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self._renew_every
                self._renew(held)
            try:
                if len(held) >= 2:  # a holder of one lane is never asked for it (lane_wants)
                    self._leases.look_for_wants(held)
                if wanted:
                    self._look_again(wanted)
            except Exception as exc:  # noqa: BLE001 - the keeper outlives a failed look
                log = logger.debug if isinstance(exc, SQLAlchemyError) else logger.warning
                log("delivery.lane_look_failed", extra={"error": type(exc).__name__})

    def _renew(self, held: dict[str, int]) -> None:
        """Renew the leases held here (as of ``held``); forget those found lost."""
        if not held:
            return
        try:
            lost = self._leases.renew(held)
        except SQLAlchemyError as exc:  # a store outage: the turns wait for it too
            logger.warning(
                "delivery.lease_renewal_failed",
                extra={"error": type(exc).__name__, "lanes": len(held)},
            )
            return
        with self._cond:  # forget only leases not taken again since the snapshot
            gone = [lane for lane in lost if self._held.get(lane) == held[lane]]
            for lane in gone:
                del self._held[lane]
        if gone:
            logger.warning("delivery.lanes_lost", extra={"count": len(gone)})
