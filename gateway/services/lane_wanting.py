"""The lanes a process asks for, and hands over: the half of ``LaneWork`` about wants.

A poke for a lane another process holds asks for it (``LaneLeases.want``, see
``gateway.services.lane_wants``: only a holder of two lanes more than this process is asked).
An asked-for lane stays known here, "wanted" (pokes for it are only flagged), and is not worked;
a lane not worth asking for is forgotten: its holder sends what the poke was for. The keeper
looks again at the wanted lanes every fraction of a second (``_look_again``): one handed over
(or found free) is worked at once; for the others the want is written again now and then, and
a lane is no longer wanted once it is empty, the ask is refused, or it was wanted for
``_WANT_PATIENCE`` seconds; its holder goes on with it. Withdrawing a want, then looking at the
lane once more as a poke does, leaves no delivery behind: whoever holds the lane at that look
sends every row committed before it.

The other way round, a lane of ours found wanted by the keeper is handed over at the end of a
turn (``_handed_over``), between two deliveries, once held for the quantum.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import Final

from gateway.services.lanes import LaneLeases, shown

__all__ = ["LaneState", "Wanting"]

logger = logging.getLogger(__name__)
_ASK_EVERY: Final = 1.0  # a wanted lane's want is written again this often (it lives longer)
_WANT_PATIENCE: Final = 30.0  # a lane is wanted at most this long, then left to its holder


class LaneState:
    """What a process knows of one lane it works or wants."""

    __slots__ = ("asked", "failures", "poked", "wanted")

    def __init__(self) -> None:
        self.poked = False  # a poke came while it was worked or wanted
        self.failures = 0  # turns failed in a row
        self.wanted: float | None = None  # since when we ask for it (monotonic), not working it
        self.asked = 0.0  # when we last wrote our want


class Wanting(ABC):
    """``LaneWork``'s wanted lanes and hand-overs (a mixin: it shares LaneWork's state)."""

    _leases: LaneLeases
    _cond: threading.Condition
    _lanes: dict[str, LaneState]  # worked or wanted here
    _held: dict[str, int]  # lane -> the acquisition it is held by
    _stopping: threading.Event

    @abstractmethod
    def _begin(self, lane: str) -> bool:
        """Work ``lane``, just leased here (``LaneWork``)."""

    @abstractmethod
    def _drop(self, lane: str) -> None:
        """Forget ``lane`` (``LaneWork``)."""

    def _wanted_lanes(self) -> list[str]:
        """The lanes wanted here now (call with the condition held)."""
        return [lane for lane, state in self._lanes.items() if state.wanted is not None]

    def _acquire_or_leave(self, lane: str, *, ask: bool) -> bool:
        """Take the lane's lease. If another holds it: ask for it (``ask``) and keep the lane,
        wanted, for the keeper to look at again; else (not worth asking) forget it. Unless
        poked meanwhile: then try again, the holder may have just given it back."""
        while not self._leases.acquire(lane):
            asked = ask and self._leases.want(lane)
            with self._cond:
                state = self._lanes[lane]
                if state.poked:
                    state.poked = False
                    continue
                if asked and not self._stopping.is_set():
                    state.asked = time.monotonic()
                    state.wanted = state.asked if state.wanted is None else state.wanted
                    return False
                del self._lanes[lane]
                self._cond.notify_all()
            if asked:  # closing meanwhile: close() has withdrawn the wants it saw, not this one
                self._leases.unwant([lane])
            return False
        return True

    def _handed_over(self, lane: str) -> bool:
        """Between two turns: hand ``lane`` to the process that asks for it, if that is due."""
        if not self._leases.hand_over_due(lane):
            return False
        with self._cond:  # the keeper must not renew it meanwhile, nor then find it lost
            acquisition = self._held.pop(lane, None)
        handed = False
        try:
            handed = self._leases.hand_over(lane)
        finally:
            if not handed and acquisition is not None:
                with self._cond:
                    self._held.setdefault(lane, acquisition)
        if handed:
            logger.info("delivery.lane_handed_over", extra={"lane": shown(lane)})
        return handed

    def _look_again(self, lanes: list[str]) -> None:
        """The keeper's look at the lanes wanted here: work each one handed over (or free), ask
        again for the others now and then, stop wanting any that is empty, refused or wanted
        too long."""
        takeable = self._leases.takeable(lanes)
        now = time.monotonic()
        for lane in lanes:
            with self._cond:
                state = self._lanes.get(lane)
                if state is None or state.wanted is None or self._stopping.is_set():
                    continue
            if lane in takeable and self._leases.acquire(lane):
                with self._cond:
                    state.wanted = None
                self._begin(lane)
            elif now - state.asked < _ASK_EVERY:
                continue
            elif (
                now - state.wanted < _WANT_PATIENCE
                and self._leases.next_pending(lane) is not None
                and self._leases.want(lane)
            ):
                with self._cond:
                    state.asked = now
            else:
                self._stop_wanting(lane)

    def _stop_wanting(self, lane: str) -> None:
        """Withdraw our want (nothing is handed to us after it), then take the lane if it is
        ours or free after all, else leave it to its holder as ``start`` does."""
        self._leases.unwant([lane])
        with self._cond:
            self._lanes[lane].wanted = None
        try:
            acquired = self._acquire_or_leave(lane, ask=False)
        except BaseException:
            self._drop(lane)  # a store outage: its holder, or recover(), sends its rows
            raise
        if acquired:
            self._begin(lane)
