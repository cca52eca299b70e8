"""One escalation walked from stage 1 to partnership resolution, as three case systems drive it.

Children's social care raises it (JSON workflow events), health acknowledges and escalates it
(FHIR R4 Tasks), police escalate it to the partnership and record the resolution (XML). Each
system sends only its own documents under its own case reference, and files every update in
its own format under that reference. The business office receives notifications (common
schema JSON) and e-mail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.base import OutboundRecord
from connectors.client import HubClient
from connectors.registry import Registry, default_registry
from connectors.simulator import CaseSystem, Received
from gateway.demo import documents as docs
from gateway.demo.documents import CONFIGS, PARTNERSHIP, REFERENCES, Document
from gateway.demo.inbox import Inbox
from security.envelopes import generate_recipient_key

__all__ = ["AGENCIES", "OFFICE", "Agency", "Story", "register", "walk"]

Say = Callable[[str], None]


@dataclass
class Agency:
    id: str
    name: str
    kind: str
    connector_kind: str
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

    def updates(self, agency_id: str) -> list[Received]:
        """The stage updates of this escalation an agency's case system filed, in order."""
        return [
            r
            for r in self.agencies[agency_id].system.received
            if r.record is not None
            and r.record.effect == "stage_update"
            and r.record.escalation_id == self.escalation_id
        ]


#: (agency id, name, kind, connector kind): one case system of each kind.
AGENCIES = (
    ("nhft", "Northamptonshire Healthcare NHS FT", "health", "fhir-r4"),
    ("nct-csc", "Northamptonshire Children's Trust", "social_care", "social-care"),
    ("nhants-police", "Northamptonshire Police", "police", "police-xml"),
)
OFFICE = ("nscp-office", "NSCP Business Office", "business_office", "generic")


def register(
    base_url: str, admin_token: str, say: Say, *, registry: Registry | None = None
) -> Story:
    """The administrator registers agencies; each agency's IT team registers its connector."""
    story = Story()
    installed = registry or default_registry()
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {admin_token}"}) as a:
        for who in (*AGENCIES, OFFICE):
            _register_one(story, a, base_url, who, installed, say)
    return story


def _register_one(
    story: Story,
    admin: httpx.Client,
    base_url: str,
    who: tuple[str, str, str, str],
    registry: Registry,
    say: Say,
) -> None:
    agency_id, name, kind, connector_kind = who
    private, public = generate_recipient_key("EC")
    system = CaseSystem(name, private, connector=registry.get(connector_kind))
    agency = Agency(agency_id, name, kind, connector_kind, system)
    body: dict[str, Any] = {"id": agency_id, "name": name, "kind": kind}
    body["partnerships"] = [PARTNERSHIP]
    if kind == "business_office":
        body["notify_email"] = "business.office@nscp.example"
    agency.credential = _ok(admin.post("/v1/agencies", json=body))["credential"]
    url = agency.system.start()
    registration = {
        "kind": connector_kind,
        "callback_url": url,
        "public_jwk": public,
        "config": CONFIGS.get(agency_id, {}),
    }
    auth = {"authorization": f"Bearer {agency.credential}"}
    with httpx.Client(base_url=base_url, headers=auth) as own:
        connector = _ok(own.post(f"/v1/agencies/{agency_id}/connectors", json=registration))
    agency.system.secret = connector["signing_secret"]
    agency.client = HubClient(base_url, connector["id"], connector["signing_secret"])
    if kind == "business_office":
        story.office = agency
    else:
        story.agencies[agency_id] = agency
    say(f"registered {name}: a '{connector_kind}' connector {connector['id']} -> {url}")


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )
    return response.json()


def send(story: Story, agency_id: str, document: Document, say: Say) -> None:
    """One native document: signed POST, 202, then every party's system files the update."""
    agency = story.agencies[agency_id]
    assert agency.client is not None
    answer = _ok(agency.client.send_native(document.body, document.media_type))
    accepted = answer["accepted"][0]
    story.escalation_id = accepted["escalation_id"]
    story.sequence += 1
    story.steps.append(accepted["type"].rsplit(".", 1)[-1])
    say(
        f"\n{agency.name} -> hub: {document.label} ({document.media_type}) "
        f"= {story.steps[-1]} (202, sequence {accepted['sequence']})"
    )
    for party in story.agencies.values():
        record = _filed(story, party)
        say(
            f"  {party.name:<36} filed under {record.case_reference}: stage {record.stage}, "
            f"tier {record.tier}, {record.status} [{record.clause}]"
        )


def _filed(story: Story, party: Agency) -> OutboundRecord:
    def found(received: list[Received]) -> OutboundRecord | None:
        for item in received:
            record = item.record
            if (
                record is not None
                and record.escalation_id == story.escalation_id
                and record.sequence == story.sequence
            ):
                return record
        return None

    if not party.system.wait_for(lambda r: found(r) is not None, timeout=30):
        raise RuntimeError(f"{party.name} did not file update {story.sequence}")
    record = found(party.system.received)
    assert record is not None
    return record


def walk(story: Story, inbox: Inbox, say: Say) -> Story:
    """Raise, acknowledge, plan, escalate through every stage, resolve: Northamptonshire."""
    health, csc, police = (a[0] for a in AGENCIES)
    say(f"\ncase references: {', '.join(f'{a} {r}' for a, r in REFERENCES.items())}")
    send(story, csc, docs.csc_raised(), say)
    send(story, health, docs.health_acknowledged(), say)
    send(story, csc, docs.csc_plan(), say)
    send(story, health, docs.health_escalated(3, 2, name="Pat Manager", role="line_manager"), say)
    send(story, csc, docs.csc_escalated(3), say)
    send(story, health, docs.health_escalated(4, 4, name="Dr Ada Director", role="director"), say)
    send(story, police, docs.police_escalated(5), say)
    send(story, police, docs.police_resolved(), say)
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
