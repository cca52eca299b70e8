"""A police record's header and vocabulary, and the readers every action builder shares."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from connectors.base import InboundContext
from connectors.police_xml import Node, vocabulary
from schemas.actions import DiscussionMethod, OutcomeKind
from schemas.common import AgencyKind, ConcernCategory, Flag, TimeUnit
from schemas.envelope import EventType
from schemas.people import Role

__all__ = [
    "CATEGORIES",
    "FLAGS",
    "KINDS",
    "METHODS",
    "OUTCOMES",
    "ROLES",
    "Data",
    "Record",
    "agencies",
    "is_valid_nhs_number",
    "listed",
    "timescale",
]

Data = dict[str, Any]
KINDS: Final = vocabulary(AgencyKind)
CATEGORIES: Final = vocabulary(ConcernCategory)
FLAGS: Final = vocabulary(Flag)
METHODS: Final = vocabulary(DiscussionMethod)
OUTCOMES: Final = vocabulary(OutcomeKind)
ROLES: Final = vocabulary(Role)
_UNITS: Final = vocabulary(TimeUnit)
_NHS_NUMBER: Final = re.compile(r"^[0-9]{3} ?[0-9]{3} ?[0-9]{4}$")


@dataclass(frozen=True)
class Record:
    """One record's header, read and checked; what every action builder needs."""

    node: Node
    action: EventType
    agency_id: str
    force_code: str
    reference: str
    event_id: str
    time: datetime
    escalation_id: str | None
    officer: dict[str, Any]
    context: InboundContext

    def agency(self, node: Node, attr: str, code: str | None = None) -> str:
        """The hub agency id for the code in ``attr`` (or ``code``, one of a list in it)."""
        code = code if code is not None else node.need(attr)
        if code == self.force_code:
            return self.agency_id
        found = self.context.config.organisations.get(code)
        if found is None:
            raise node.error(
                "is not an agency code this connector knows",
                "the force's own code or a code in the connector's organisations setting",
                attr,
            )
        return found


def is_valid_nhs_number(value: str) -> bool:
    """Ten digits (spaces allowed as 3-3-4) whose last is the mod 11 check digit."""
    if not _NHS_NUMBER.match(value):
        return False
    digits = [int(d) for d in value.replace(" ", "")]
    check = 11 - sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    return (0 if check == 11 else check) == digits[9]


def listed(
    holder: Node | None, name: str, table: Mapping[str, Any], *, minimum: int = 1
) -> list[Any]:
    """The vocabulary values of every ``name`` child of ``holder`` (none if it is absent)."""
    if holder is None:
        return []
    holder.only((name,))
    items = holder.children(name)
    if len(items) < minimum:
        raise holder.error("is empty", f"at least {minimum} <{name}>")
    for item in items:
        item.only()
    return [item.enum(item.text(), table) for item in items]


def timescale(node: Node) -> Data:
    """An agreed timescale element: ``amount`` and ``unit`` attributes."""
    node.only((), ("amount", "unit"))
    return {
        "amount": node.integer(node.need("amount"), low=0, high=366, attr="amount"),
        "unit": node.enum(node.need("unit"), _UNITS, "unit"),
    }


def agencies(r: Record, holder: Node | None) -> list[str]:
    """The hub agency ids of the ``<Agency code="..."/>`` children of ``holder``."""
    if holder is None:
        return []
    holder.only(("Agency",))
    found = []
    for agency in holder.children("Agency"):
        agency.only((), ("code",))
        found.append(r.agency(agency, "code"))
    return found
