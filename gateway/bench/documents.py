"""The benchmark's documents: the agencies, the events they send, and a stored state template.

Every event is realistic for the Northamptonshire procedure: a ``raised`` opens a stage-1
escalation between health, children's social care and police (three parties, so three stage
updates); a ``discussion_recorded`` on an open escalation also updates all three parties.
The state template is the router's own answer to a ``raised`` (``router.decide``), so seeded
escalations are exactly what the hub would have stored, only with other ids and due times.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from router import procedures
from router.decide import decide
from schemas.envelope import agency_event_adapter

__all__ = [
    "AGENCIES",
    "GROUPS",
    "PARTNERSHIP",
    "BenchAgency",
    "StateTemplate",
    "discussion_event",
    "raised_event",
    "trio",
]

PARTNERSHIP: Final = "northamptonshire"
_PLACEHOLDER_ID: Final = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class BenchAgency:
    """One receiving agency of the benchmark (ids are fixed so seeding can name them).

    Agencies come in ``GROUPS`` trios (health, social care, police); an escalation is between
    the three of one trio. Many trios, because the gateway limits each connector to 20
    requests a second (``gateway.api.ratelimit``): a partnership has many agencies, and the
    benchmark must measure the hub, not the connectors' allowance. 32 trios are 96 connectors,
    1,920 requests a second in all: above the ingest goal (0.6 x the slowest floor, about
    1,200/s here), so the limit never caps what is measured.
    """

    id: str
    name: str
    kind: str
    group: int

    @property
    def source(self) -> str:
        return f"urn:bench:{self.id}"


GROUPS: Final = 32
_KINDS: Final = (("health", "Healthcare NHS FT"), ("social_care", "Children's Trust"),
                 ("police", "Police"))  # fmt: skip
AGENCIES: Final = tuple(
    BenchAgency(f"bench{g}-{kind.split('_')[0]}", f"Bench {g} {title}", kind, g)
    for g in range(GROUPS)
    for kind, title in _KINDS
)


def trio(group: int) -> tuple[BenchAgency, ...]:
    """The three agencies of one group: the parties of its escalations."""
    return tuple(a for a in AGENCIES if a.group == group % GROUPS)


def _actor(agency_id: str) -> dict[str, str]:
    return {"agency_id": agency_id, "name": f"Practitioner ({agency_id})", "role": "practitioner"}


def raised_event(agency: BenchAgency, event_id: str, now: datetime) -> dict[str, Any]:
    """A ``raised`` by ``agency`` naming all three agencies as parties (fans out to three)."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": agency.source,
        "type": "uk.escalation-hub.v1.raised",
        "time": now.isoformat(),
        "agencyref": f"{agency.id.upper()}-{event_id}",
        "data": {
            "partnership": PARTNERSHIP,
            "raised_by": _actor(agency.id),
            "parties": [
                {"agency_id": a.id, "kind": a.kind, "case_reference": f"{a.id.upper()}-CASE"}
                for a in trio(agency.group)
            ],
            "child": {
                "identifiers": {
                    "nhs_number": "943 476 5919",
                    "given_name": "Sam",
                    "family_name": "Example",
                    "date_of_birth": "2015-06-01",
                }
            },
            "concern_categories": ["thresholds", "need_for_action"],
            "summary": "Referral not considered to meet the threshold for assessment.",
        },
    }


def discussion_event(
    agency: BenchAgency, event_id: str, escalation_id: str, now: datetime
) -> dict[str, Any]:
    """A ``discussion_recorded`` by ``agency`` on an open escalation it is party to."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": agency.source,
        "type": "uk.escalation-hub.v1.discussion_recorded",
        "time": now.isoformat(),
        "subject": escalation_id,
        "data": {
            "by": _actor(agency.id),
            "held_at": now.isoformat(),
            "method": "telephone",
            "summary": "Discussed the threshold decision by telephone; agreed to review it.",
        },
    }


class StateTemplate:
    """The sealed-state JSON of a freshly raised escalation, with id and due times to fill in."""

    def __init__(self, now: datetime, group: int = 0) -> None:
        event = agency_event_adapter.validate_python(
            {**raised_event(trio(group)[0], "seed-raised", now), "subject": _PLACEHOLDER_ID}
        )
        decision = decide(None, event, procedures.load(PARTNERSHIP), now)
        if decision.escalation is None or len(decision.escalation.deadlines) != 1:
            raise RuntimeError(
                f"the benchmark's template 'raised' was not accepted as expected "
                f"(rule {decision.rule}); check router/procedures/{PARTNERSHIP}.toml"
            )
        state = decision.escalation.model_dump(mode="json")
        self.procedure_version = decision.procedure_version
        self.deadline_id = str(state["deadlines"][0]["id"])
        self.calendar_version = str(state["deadlines"][0]["calendar_version"])
        self.outcome = decision.rule
        state["events_applied"] = 2  # the seeded history is a raised and a discussion
        state["deadlines"][0].update(due="{due}", notice_at="{notice}")
        text = json.dumps(state, separators=(",", ":"), sort_keys=True)
        self._parts = _split(text.replace(_PLACEHOLDER_ID, "{id}"))

    def render(self, escalation_id: str, due: datetime, notice: datetime) -> bytes:
        """The state JSON of one seeded escalation."""
        values = {"{id}": escalation_id, "{due}": _iso(due), "{notice}": _iso(notice)}
        return "".join(values.get(part, part) for part in self._parts).encode()


def _split(text: str) -> list[str]:
    """``text`` cut around its ``{id}``, ``{due}`` and ``{notice}`` markers (kept as parts)."""
    parts = re.split(r"(\{id\}|\{due\}|\{notice\})", text)
    if parts.count("{due}") != 1 or parts.count("{notice}") != 1 or "{id}" not in parts:
        raise RuntimeError("the state template lost its id or deadline markers")
    return parts


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def notice_before(due: datetime) -> datetime:
    """The notice instant the seeded deadlines use: one day before they fall due."""
    return due - timedelta(days=1)
