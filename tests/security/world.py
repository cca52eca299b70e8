"""The world the attacks run in: a hub on loopback, agencies of two partnerships, one escalation.

Northamptonshire: three parties to the escalation (health, social care, police), an agency of
the same partnership that is no party (a school), and the partnership's business office.
Buckinghamshire: a social care agency and its business office. Every agency has a connector
whose case system (``RecordingCaseSystem``) keeps the raw bytes of every delivery too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from sqlalchemy import func, select

from connectors.simulator import CaseSystem
from gateway.demo.stack import Stack
from gateway.store.models import AuditEntry, InboundEvent
from security.envelopes import generate_recipient_key
from security.webhooks import sign

__all__ = [
    "CHILD",
    "FOREIGN",
    "FOREIGN_OFFICE",
    "OFFICE",
    "OUTSIDER",
    "PARTIES",
    "Member",
    "RecordingCaseSystem",
    "World",
    "actor",
    "build_world",
    "discussion",
    "event",
    "raised_data",
    "running_world",
]

NORTH, BUCKS = "northamptonshire", "buckinghamshire"
PARTIES: Final = ("nhft", "nct-csc", "nhants-police")
OFFICE, OUTSIDER = "nscp-office", "nn-school"
FOREIGN, FOREIGN_OFFICE = "bucks-csc", "bscp-office"
_MEMBERS: Final = (
    ("nhft", "health", NORTH),
    ("nct-csc", "social_care", NORTH),
    ("nhants-police", "police", NORTH),
    (OFFICE, "business_office", NORTH),
    (OUTSIDER, "education", NORTH),
    (FOREIGN, "social_care", BUCKS),
    (FOREIGN_OFFICE, "business_office", BUCKS),
)
#: The child of the world's escalation (a valid test NHS number, mod 11).
CHILD: Final = {
    "nhs_number": "943 476 5919",
    "given_name": "Rowan",
    "family_name": "Testchild",
    "date_of_birth": "2014-02-27",
}


@dataclass
class RecordingCaseSystem(CaseSystem):
    """A simulated case system that also keeps each request's headers and raw body."""

    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def accept(self, headers: Mapping[str, str], body: bytes) -> int:
        """Keep the raw request, then verify, decrypt and file it as the simulator does."""
        with self._lock:
            self.raw.append((dict(headers), body))
        return super().accept(headers, body)


@dataclass
class Member:
    """A registered agency: its credential, connector, signing secret, keys and case system."""

    id: str
    kind: str
    partnership: str
    credential: str
    connector_id: str
    secret: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    system: RecordingCaseSystem

    @property
    def actor(self) -> str:
        """How the hub's audit log names this agency when it acts through the API."""
        return f"agency:{self.id}"


@dataclass
class World:
    """The running hub and its members; ``escalation_id`` is the parties' escalation."""

    stack: Stack
    members: dict[str, Member] = field(default_factory=dict)
    escalation_id: str = ""
    _clients: dict[str, httpx.Client] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def http(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the hub (kept open), with ``Authorization: Bearer token``."""
        key = token or ""
        if key not in self._clients:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            self._clients[key] = httpx.Client(base_url=self.base_url, headers=headers, timeout=30)
        return self._clients[key]

    def post_events(
        self,
        member: Member,
        payload: Any,
        *,
        secrets: Sequence[str] | None = None,
        at: datetime | None = None,
        msg_id: str | None = None,
        connector_id: str | None = None,
    ) -> httpx.Response:
        """POST ``payload`` (JSON, or bytes as they are) to a connector's events, signed."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = sign(
            list(secrets or [member.secret]),
            msg_id or f"msg_{uuid.uuid4().hex}",
            at or datetime.now(UTC),
            body,
        )
        headers["content-type"] = "application/json"
        target = connector_id or member.connector_id
        return self.http().post(f"/v1/connectors/{target}/events", content=body, headers=headers)

    def audit_count(self, action: str, actors: Sequence[str]) -> int:
        """How many audit entries of ``action`` name one of ``actors``."""
        assert self.stack.hub is not None
        with self.stack.hub.sessions() as session:
            query = select(func.count()).where(
                AuditEntry.action == action, AuditEntry.actor.in_(list(actors))
            )
            return int(session.scalar(query) or 0)

    def stored_events(self) -> int:
        """How many inbound events the hub has stored."""
        assert self.stack.hub is not None
        with self.stack.hub.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(InboundEvent)) or 0)

    def close(self) -> None:
        """Stop the case systems and close the HTTP clients."""
        for member in self.members.values():
            member.system.stop()
        for client in self._clients.values():
            client.close()


def actor(agency_id: str, role: str = "practitioner") -> dict[str, str]:
    """The common schema's actor: a named professional of an agency."""
    return {"agency_id": agency_id, "name": f"Named {role} of {agency_id}", "role": role}


def event(kind: str, data: dict[str, Any], *, subject: str | None = None) -> dict[str, Any]:
    """A CloudEvent of ``uk.escalation-hub.v1.<kind>`` with a fresh id."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex}",
        "source": "urn:security-suite:case-system",
        "type": f"uk.escalation-hub.v1.{kind}",
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }
    if subject is not None:
        body["subject"] = subject
    return body


def discussion(by: str, subject: str, summary: str = "Discussed by telephone.") -> dict[str, Any]:
    """A ``discussion_recorded`` event by a party: an ordinary action the hub accepts."""
    data = {
        "by": actor(by),
        "held_at": datetime.now(UTC).isoformat(),
        "method": "telephone",
        "summary": summary,
    }
    return event("discussion_recorded", data, subject=subject)


def raised_data(
    by: str,
    *,
    parties: Sequence[str] = PARTIES,
    child: Mapping[str, str] | None = None,
    summary: str = "Disagreement about the threshold for a strategy discussion.",
    partnership: str = NORTH,
) -> dict[str, Any]:
    """The data of a ``raised`` event between ``parties`` about ``child``."""
    kinds = {agency_id: kind for agency_id, kind, _ in _MEMBERS}
    return {
        "partnership": partnership,
        "raised_by": actor(by),
        "parties": [
            {"agency_id": a, "kind": kinds.get(a, "other"), "case_reference": f"{a.upper()}-REF"}
            for a in parties
        ],
        "child": {"identifiers": dict(child or CHILD)},
        "concern_categories": ["thresholds"],
        "summary": summary,
    }


def build_world(
    stack: Stack, *, raise_escalation: bool = True, callback_url: str | None = None
) -> World:
    """Register every member (admin, then each agency's own connector); raise the escalation.

    Connectors call back their member's case system, or ``callback_url`` when given."""
    world = World(stack)
    admin = world.http(stack.admin_token)
    for agency_id, kind, partnership in _MEMBERS:
        who = (agency_id, kind, partnership)
        world.members[agency_id] = _enrol(world, admin, who, callback_url)
    if raise_escalation:
        answer = world.post_events(world.members["nhft"], event("raised", raised_data("nhft")))
        assert answer.status_code == 202, answer.text
        world.escalation_id = answer.json()["accepted"][0]["escalation_id"]
        for party in PARTIES:
            got = world.members[party].system.wait_for(_first_update(world.escalation_id), 30)
            assert got, f"{party} received no stage update for the new escalation"
    return world


def _first_update(escalation_id: str) -> Callable[[list[Any]], bool]:
    return lambda received: any(r.document.get("escalation_id") == escalation_id for r in received)


def _enrol(
    world: World, admin: httpx.Client, who: tuple[str, str, str], callback_url: str | None
) -> Member:
    agency_id, kind, partnership = who
    body: dict[str, Any] = {
        "id": agency_id,
        "name": f"{agency_id} (security suite)",
        "kind": kind,
        "partnerships": [partnership],
    }
    created = admin.post("/v1/agencies", json=body)
    assert created.status_code == 201, created.text
    credential = created.json()["credential"]
    private, public = generate_recipient_key("EC")
    system = RecordingCaseSystem(agency_id, private)
    url = system.start()
    answer = world.http(credential).post(
        f"/v1/agencies/{agency_id}/connectors",
        json={"kind": "generic", "callback_url": callback_url or url, "public_jwk": public},
    )
    assert answer.status_code == 201, answer.text
    connector = answer.json()
    system.secret = connector["signing_secret"]
    return Member(
        agency_id,
        kind,
        partnership,
        credential,
        connector["id"],
        connector["signing_secret"],
        private,
        public,
        system,
    )


@contextmanager
def running_world(*, stack: Mapping[str, Any] | None = None, **options: Any) -> Iterator[World]:
    """A hub (the demo's ``Stack`` with ``stack`` settings) and its members (``build_world``
    with ``options``), closed afterwards: what every attack module's ``world`` fixture is."""
    with Stack(**dict(stack or {})) as hub:
        built = build_world(hub, **options)
        try:
            yield built
        finally:
            built.close()
