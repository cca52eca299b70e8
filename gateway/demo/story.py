"""One escalation walked from stage 1 to partnership resolution, as case systems drive it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.client import HubClient
from connectors.simulator import CaseSystem
from gateway.demo.inbox import Inbox
from router.calendar import LONDON
from security.envelopes import generate_recipient_key

__all__ = ["AGENCIES", "Agency", "Story", "register", "walk"]

Say = Callable[[str], None]
PARTNERSHIP = "northamptonshire"


@dataclass
class Agency:
    id: str
    name: str
    kind: str
    system: CaseSystem
    client: HubClient | None = None
    credential: str = ""


@dataclass
class Story:
    escalation_id: str = ""
    agencies: dict[str, Agency] = field(default_factory=dict)
    office: Agency | None = None
    sequence: int = 0
    steps: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Stop the simulated case systems and close the agencies' HTTP clients."""
        for agency in (*self.agencies.values(), *([self.office] if self.office else [])):
            agency.system.stop()
            if agency.client is not None:
                agency.client.close()


AGENCIES = (
    ("nhft", "Northamptonshire Healthcare NHS FT", "health"),
    ("nct-csc", "Northamptonshire Children's Trust", "social_care"),
    ("nhants-police", "Northamptonshire Police", "police"),
)
OFFICE = ("nscp-office", "NSCP Business Office", "business_office")


def register(base_url: str, admin_token: str, say: Say) -> Story:
    """The administrator registers agencies; each agency's IT team registers its connector."""
    story = Story()
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {admin_token}"}) as a:
        for agency_id, name, kind in (*AGENCIES, OFFICE):
            _register_one(story, a, base_url, (agency_id, name, kind), say)
    return story


def _register_one(
    story: Story, admin: httpx.Client, base_url: str, who: tuple[str, str, str], say: Say
) -> None:
    agency_id, name, kind = who
    private, public = generate_recipient_key("EC")
    agency = Agency(agency_id, name, kind, CaseSystem(name, private))
    body: dict[str, Any] = {
        "id": agency_id,
        "name": name,
        "kind": kind,
        "partnerships": [PARTNERSHIP],
    }
    if kind == "business_office":
        body["notify_email"] = "business.office@nscp.example"
    agency.credential = _ok(admin.post("/v1/agencies", json=body))["credential"]
    url = agency.system.start()
    auth = {"authorization": f"Bearer {agency.credential}"}
    with httpx.Client(base_url=base_url, headers=auth) as own:
        connector = _ok(
            own.post(
                f"/v1/agencies/{agency_id}/connectors",
                json={"kind": "generic", "callback_url": url, "public_jwk": public},
            )
        )
    agency.system.secret = connector["signing_secret"]
    agency.client = HubClient(base_url, connector["id"], connector["signing_secret"])
    if kind == "business_office":
        story.office = agency
    else:
        story.agencies[agency_id] = agency
    say(f"registered {name} ({kind}): connector {connector['id']} -> {url}")


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )
    return response.json()


def _actor(agency_id: str, role: str) -> dict[str, str]:
    names = {
        "practitioner": "Practitioner",
        "line_manager": "Line Manager",
        "senior_manager": "Senior Manager",
        "director": "Director",
    }
    return {"agency_id": agency_id, "name": f"{names.get(role, role)} ({agency_id})", "role": role}


def _event(kind: str, data: dict[str, Any], *, subject: str | None, ref: str) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"urn:demo:{ref}",
        "type": f"uk.escalation-hub.v1.{kind}",
        "time": datetime.now(UTC).isoformat(),
        "agencyref": ref,
        "data": data,
    }
    if subject:
        event["subject"] = subject
    return event


def _evidence(summary: str) -> dict[str, Any]:
    return {
        "exhausted": True,
        "attempts": [
            {"at": datetime.now(UTC).isoformat(), "method": "telephone", "summary": summary}
        ],
    }


def send(story: Story, agency_id: str, kind: str, data: dict[str, Any], say: Say) -> None:
    """One agency action: signed POST, 202, then every party's case system files the update."""
    agency = story.agencies[agency_id]
    assert agency.client is not None
    ref = f"{agency_id.upper()}-{1000 + len(story.steps)}"
    event = _event(kind, data, subject=story.escalation_id or None, ref=ref)
    answer = _ok(agency.client.send(event))
    accepted = answer["accepted"][0]
    story.escalation_id = accepted["escalation_id"]
    story.sequence += 1
    story.steps.append(kind)
    say(f"\n{agency.name} -> hub: {kind} (202, sequence {accepted['sequence']})")
    for party in story.agencies.values():
        got = party.system.wait_for(lambda r: _has(r, story), timeout=30)
        if not got:
            raise RuntimeError(f"{party.name} did not receive update {story.sequence}")
        update = next(r for r in party.system.received if _is(r.document, story)).document
        due = update.get("due") or "-"
        say(
            f"  {party.name:<36} filed: stage {update['stage']} ({update['stage_title']}), "
            f"tier {update['tier']}, due {due} [{update['clause']}]"
        )


def _london(due: str | None) -> str:
    if not due:
        return "-"
    return datetime.fromisoformat(due).astimezone(LONDON).strftime("%a %d %b %Y %H:%M %Z")


def _is(document: dict[str, Any], story: Story) -> bool:
    return (
        document.get("escalation_id") == story.escalation_id
        and document.get("sequence") == story.sequence
        and "stage" in document
    )


def _has(received: list[Any], story: Story) -> bool:
    return any(_is(r.document, story) for r in received)


def walk(story: Story, inbox: Inbox, say: Say) -> Story:
    """Raise, acknowledge, plan, escalate through every stage, resolve: Northamptonshire."""
    health, csc, police = (a[0] for a in AGENCIES)
    parties = [
        {"agency_id": a_id, "kind": kind, "case_reference": f"{a_id.upper()}-CASE-1"}
        for a_id, _, kind in AGENCIES
    ]
    send(
        story,
        health,
        "raised",
        {
            "partnership": PARTNERSHIP,
            "raised_by": _actor(health, "practitioner"),
            "parties": parties,
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
        say,
    )
    send(story, csc, "acknowledged", {"by": _actor(csc, "practitioner")}, say)
    send(
        story,
        csc,
        "plan_agreed",
        {
            "by": _actor(csc, "practitioner"),
            "plan": {
                "summary": "Joint home visit and a strategy discussion.",
                "agreed_by": [health, csc],
            },
        },
        say,
    )
    steps = (
        (health, "line_manager"),
        (csc, "senior_manager"),
        (health, "director"),
        (police, "director"),
    )
    for number, (agency_id, role) in enumerate(steps, start=2):
        send(
            story,
            agency_id,
            "escalated",
            {
                "by": _actor(agency_id, role),
                "evidence": _evidence(
                    f"Attempts at stage {number - 1} exhausted without agreement."
                ),
            },
            say,
        )
    send(
        story,
        health,
        "resolved",
        {
            "by": _actor(health, "director"),
            "outcome": {
                "kind": "mediated",
                "summary": "Mediation agreed an assessment within 10 days.",
                "agreed_by": [a[0] for a in AGENCIES],
                "written_confirmation": True,
                "learning_points": ["Share threshold rationale in writing at stage 1."],
            },
        },
        say,
    )
    _show_office(story, inbox, say)
    return story


def _show_office(story: Story, inbox: Inbox, say: Say) -> None:
    office = story.office
    assert office is not None
    expected = 3  # stage 4 (director level), stage 5 (referral), resolution (learning)
    inbox.wait_for(expected, timeout=30)
    office.system.wait_for(lambda r: len(r) >= expected, timeout=30)
    say(
        f"\nBusiness office: {len(inbox.messages)} e-mails, "
        f"{len(office.system.received)} webhook notifications"
    )
    for message in inbox.messages:
        say(f"  e-mail  {message['subject']}")
    for item in office.system.received:
        doc = item.document
        say(f"  webhook stage {doc.get('stage')}: {doc.get('reason')} [{doc.get('clause')}]")
