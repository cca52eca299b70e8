"""Wants: how a delivery process asks for a lane that another one holds, and gets it.

A holder keeps a lane while the lane has work, so one process could end up with every lane and
another with none: scaling delivery out would then gain nothing. So a process poked for a lane
that another process holds asks for it: it writes itself into the row's ``wanted_by`` until
``wanted_until`` (``ask``), a conditional write that only succeeds while the holder's lease is
live, nobody else's want is, and the holder holds at least two lanes more than the asker (so
after a hand-over the asker still holds no more than the holder: lanes never go back and forth
between two processes, and a lone lane stays where it is). The holder looks for wants on its
lanes every fraction of a second; once it has held a wanted lane for its quantum, it hands the
lease over between two deliveries (``hand_over``): one conditional write, again only while the
want is live and the counts still say so, makes the asker the holder, so no third process can
slip in between and the lane still has exactly one holder, sending in ``seq`` order.

An asker writes its want again while it waits and withdraws it when it stops waiting
(``withdraw``); a want not written again expires, and a lease handed to an asker that died
meanwhile is short: it expires like any other and the lane is taken over.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Final

from sqlalchemy import SQLColumnExpression, Update, and_, case, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from gateway.store.models import DeliveryLane

__all__ = [
    "QUANTUM_SECONDS",
    "WANT_SECONDS",
    "ask",
    "hand_over",
    "live_want",
    "ours_taken",
    "withdraw",
]

QUANTUM_SECONDS: Final = 1.0  # the least time a lane stays with its holder once it is wanted
WANT_SECONDS: Final = 5.0  # a want's life after it was last written (an asker writes it again)


def ask(lane: str, asker: str, *, now: datetime, until: datetime) -> Update:
    """``asker`` wants ``lane`` until ``until``: held live by another with two lanes more, and
    not wanted by a third (one row, or none)."""
    free_to_ask = or_(
        DeliveryLane.wanted_by.is_(None),
        DeliveryLane.wanted_by == asker,
        DeliveryLane.wanted_until < now,
    )
    return (
        update(DeliveryLane)
        .where(
            DeliveryLane.target == lane,
            DeliveryLane.holder != asker,  # and not NULL: nobody to ask
            DeliveryLane.lease_until >= now,
            free_to_ask,
            _lanes_held(DeliveryLane.holder, now) > _lanes_held(asker, now) + 1,
        )
        .values(wanted_by=asker, wanted_until=until)
    )


def withdraw(lanes: Collection[str], asker: str) -> Update:
    """``asker`` no longer wants ``lanes``: none of them is handed to it after this."""
    return (
        update(DeliveryLane)
        .where(DeliveryLane.target.in_(sorted(lanes)), DeliveryLane.wanted_by == asker)
        .values(wanted_by=None, wanted_until=None)
    )


def hand_over(lane: str, holder: str, *, now: datetime, lease_until: datetime) -> Update:
    """``holder`` makes the live asker of ``lane`` its holder until ``lease_until``, while it
    still holds two lanes more than the asker (one row, or none)."""
    return (
        update(DeliveryLane)
        .where(
            DeliveryLane.target == lane,
            DeliveryLane.holder == holder,
            live_want(holder, now),
            _lanes_held(holder, now) > _lanes_held(DeliveryLane.wanted_by, now) + 1,
        )
        .values(
            holder=DeliveryLane.wanted_by,  # SET reads the row as it was before the update
            lease_until=lease_until,
            wanted_by=None,
            wanted_until=None,
        )
    )


def live_want(holder: str, now: datetime) -> ColumnElement[bool]:
    """Another process than ``holder`` asks for the lane, and its want has not expired."""
    return and_(
        DeliveryLane.wanted_by.is_not(None),
        DeliveryLane.wanted_by != holder,
        DeliveryLane.wanted_until >= now,
    )


def ours_taken(taker: str) -> dict[str, ColumnElement[object]]:
    """SET values for a lane ``taker`` takes: its own want is met (any other stays)."""
    mine = DeliveryLane.wanted_by == taker
    return {
        "wanted_by": case((mine, None), else_=DeliveryLane.wanted_by),
        "wanted_until": case((mine, None), else_=DeliveryLane.wanted_until),
    }


def _lanes_held(holder: SQLColumnExpression[str | None] | str, now: datetime) -> ScalarSelect[int]:
    """How many lanes ``holder`` (a value, or a column of the updated row) holds live."""
    lanes = aliased(DeliveryLane)
    return (
        select(func.count())
        .select_from(lanes)
        .where(lanes.holder == holder, lanes.lease_until >= now)
        .scalar_subquery()
    )
