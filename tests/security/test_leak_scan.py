"""Leak scan: one whole escalation story, and everything the hub emitted while it ran.

The demo story (``gateway.demo.story``: register, then walk from stage 1 to resolution) runs
with every log record captured at DEBUG (message, extras, exceptions; uvicorn's and kombu's
loggers too) and every HTTP exchange recorded, then refused requests that carry the child's
details are sent. Logs, the hub's HTTP answers (headers and bodies), the hub's own deliveries
(headers and bodies), /metrics, the refusals' problem bodies and the business office's mail
must hold none of: the child's NHS number (any spelling), names, date of birth, the
narratives, the admin token, agency credentials, signing secrets, data keys, pseudonym key or
audit signing key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.demo import documents as docs
from gateway.demo.stack import Stack
from gateway.demo.story import Story, register, walk
from gateway.store.models import InboundEvent
from tests.security.capture import Exchange, HttpCapture, LogCapture, capturing_logs
from tests.security.conftest import Attacks

NARRATIVE_KEYS = frozenset({"summary", "note", "description", "learning_points", "decisions"})
IDENTIFIERS = ("nhs_number", "given_name", "family_name", "date_of_birth", "local_ids")
INVALID_NHS = "943 476 5918"  # the probes send it; it must not come back either
ISSUING = re.compile(r"/v1/agencies(/[^/]+/connectors)?$|/rotate-secret$")


@dataclass
class Scan:
    """What the story made the hub emit, and what must never be in it."""

    stack: Stack
    story: Story
    logs: LogCapture
    http: HttpCapture
    probes: list[Exchange] = field(default_factory=list)
    metrics: str = ""
    mail: list[str] = field(default_factory=list)

    def hub_answers(self) -> list[Exchange]:
        return [e for e in self.http.exchanges if e.url.startswith(self.stack.base_url + "/")]

    def hub_deliveries(self) -> list[Exchange]:
        return [e for e in self.http.exchanges if not e.url.startswith(self.stack.base_url + "/")]


def stored_events(scan: Scan) -> list[Any]:
    """What the hub was told, in the common schema: its stored events, unsealed."""
    hub = scan.stack.hub
    assert hub is not None
    with hub.sessions() as session:
        rows = session.scalars(select(InboundEvent).order_by(InboundEvent.pk)).all()
        return [
            hub.sealer.unseal(r.body_sealed, context=f"inbound:{r.source}#{r.event_id}")
            for r in rows
        ]


def _walk(node: Any, found: dict[str, set[str]], key: str = "") -> None:
    if isinstance(node, dict):
        for name, value in node.items():
            _walk(value, found, "local_ids" if key == "local_ids" else name)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, key)
    elif isinstance(node, str) and key in NARRATIVE_KEYS:
        found["narrative"].add(node)
    elif isinstance(node, str) and key in IDENTIFIERS:
        found[key].add(node)


def child_and_narratives(scan: Scan) -> list[str]:
    """The child's identifiers (NHS number in every spelling) and the narratives told."""
    found: dict[str, set[str]] = {k: set() for k in ("narrative", *IDENTIFIERS)}
    _walk(stored_events(scan), found)
    assert found["nhs_number"], "the story told the hub of no child: the scan would prove nothing"
    assert found["narrative"], "the story told the hub no narrative: the scan would prove nothing"
    values = {v for vs in found.values() for v in vs} | {INVALID_NHS}
    for number in (*found["nhs_number"], INVALID_NHS):
        digits = re.sub(r"\D", "", number)
        values |= {
            digits,
            f"{digits[:3]} {digits[3:6]} {digits[6:]}",
            f"{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        }
    return sorted(values)


def secrets(scan: Scan) -> list[str]:
    """The hub's and the agencies' secrets as they would appear in text."""
    assert scan.stack.hub is not None
    settings = scan.stack.hub.settings
    found = [settings.admin_token.get_secret_value()]
    found += [k.split(":", 1)[1] for k in settings.data_keys.get_secret_value().split(",")]
    found += [
        settings.pseudonym_key.get_secret_value(),
        settings.audit_signing_key.get_secret_value(),
    ]
    for agency in (
        *scan.story.agencies.values(),
        *([scan.story.office] if scan.story.office else []),
    ):
        found += [agency.credential, agency.credential.rsplit("_", 1)[-1], agency.system.secret]
        found.append(agency.system.secret.removeprefix("whsec_"))
    return [s for s in found if s]


def _pattern(values: list[str]) -> re.Pattern[str]:
    """Words (names) match whole words; everything else matches anywhere."""
    parts = [rf"\b{re.escape(v)}\b" if v.isalpha() else re.escape(v) for v in values]
    return re.compile("|".join(parts))


def _native_probes() -> list[tuple[str, bytes, str]]:
    """Refused documents that carry the child's details: (sender, body, media type)."""
    raised = json.loads(docs.csc_raised().body)
    person, note = raised["person"], raised["caseNote"]["text"]

    def csc(**changes: Any) -> tuple[str, bytes, str]:
        return ("nct-csc", json.dumps({**raised, **changes}).encode(), "application/json")

    told = f"{person['forename']} {person['surname']} {person['nhsNumber']} {note}"
    return [
        csc(person={**person, "nhsNumber": INVALID_NHS}),
        csc(person={**person, "dateOfBirth": "2015-13-45"}),
        csc(concerns=["NOT_A_CONCERN"]),
        csc(caseNote={**raised["caseNote"], "text": note * 2000}),
        csc(partnerAgencies=[{"code": person["forename"], "agencyType": "HEALTH"}]),
        ("nct-csc", f'{{"person": "{told}"'.encode(), "application/json"),
        ("nhants-police", f"<Record><Name>{told}</Name>".encode(), "application/xml"),
        (
            "nhft",
            json.dumps({"resourceType": "Task", "note": [{"text": told}]}).encode(),
            "application/fhir+json",
        ),
        ("nct-csc", json.dumps(raised).encode(), "text/plain"),
    ]


def _probe(scan: Scan) -> None:
    """Send the refused documents as a careless case system would; keep the exchanges."""
    probes = _native_probes()
    for sender, body, media_type in probes:
        client = scan.story.agencies[sender].client
        assert client is not None
        answer = client.send_native(body, media_type)
        assert 400 <= answer.status_code < 500, answer.text
    scan.probes = scan.http.exchanges[-len(probes) :]


@pytest.fixture(scope="module")
def scan() -> Iterator[Scan]:
    with Stack() as stack, capturing_logs() as logs, pytest.MonkeyPatch.context() as patch:
        http = HttpCapture()
        http.install(patch)
        told: list[str] = []
        story = register(stack.base_url, stack.admin_token, told.append)
        found = Scan(stack, story, logs, http)
        try:
            walk(story, stack.inbox, told.append)
            _probe(found)
            found.metrics = http_get(found, "/metrics")
            found.mail = [m.as_string() for m in stack.inbox.messages]
            yield found
        finally:
            story.close()


def http_get(scan: Scan, path: str) -> str:
    """GET ``path`` from the hub without credentials; the body as text."""
    with httpx.Client(base_url=scan.stack.base_url) as client:
        return client.get(path).text


def _leaks(texts: list[str], pattern: re.Pattern[str]) -> list[str]:
    return [
        f"...{t[max(0, m.start() - 60) : m.end() + 20]}..."
        for t in texts
        if (m := pattern.search(t))
    ]


def _sources(scan: Scan, *, issuing: bool) -> dict[str, list[str]]:
    """Texts by source; ``issuing=False`` leaves out the answers that issue credentials."""
    answers = [
        e.response_headers + "\n" + e.response_body
        for e in scan.hub_answers()
        if issuing or not (e.method == "POST" and ISSUING.search(e.url))
    ]
    deliveries = [
        "\n".join((e.url, e.request_headers, e.request_body, e.response_headers, e.response_body))
        for e in scan.hub_deliveries()
    ]
    return {
        "log records": scan.logs.records,
        "HTTP answers of the hub (headers and bodies)": answers,
        "deliveries the hub sent (headers and JWE bodies)": deliveries,
        "problem bodies of refused requests": [e.response_body for e in scan.probes],
        "/metrics": [scan.metrics],
        "business office e-mails": scan.mail,
    }


def test_the_scan_sees_everything_the_story_made_the_hub_emit(scan: Scan) -> None:
    sources = _sources(scan, issuing=True)
    assert all(sources.values()), {k: len(v) for k, v in sources.items()}
    assert len(scan.mail) == 3
    assert any(scan.story.escalation_id in t for t in sources["log records"])
    assert "eh_events_accepted" in scan.metrics
    assert {e.response_body[:1] for e in scan.probes} == {"{"}


def test_nothing_the_hub_emitted_names_the_child_or_repeats_a_narrative(
    scan: Scan, attacks: Attacks
) -> None:
    pattern = _pattern(child_and_narratives(scan))
    found: dict[str, list[str]] = {}
    for source, texts in _sources(scan, issuing=True).items():
        found[source] = _leaks(texts, pattern)
        attacks.record(
            "leaks",
            f"child identifiers or narrative in {source}",
            tried=len(texts),
            refused=len(texts) - len(found[source]),
        )
    assert {k: v for k, v in found.items() if v} == {}


def test_nothing_the_hub_emitted_carries_a_token_secret_or_key(
    scan: Scan, attacks: Attacks
) -> None:
    pattern = _pattern(secrets(scan))
    found: dict[str, list[str]] = {}
    for source, texts in _sources(scan, issuing=False).items():
        found[source] = _leaks(texts, pattern)
        attacks.record(
            "leaks",
            f"tokens, secrets or keys in {source}",
            tried=len(texts),
            refused=len(texts) - len(found[source]),
        )
    assert {k: v for k, v in found.items() if v} == {}


def test_error_bodies_do_not_echo_values_sent_in_paths_or_queries(
    scan: Scan, attacks: Attacks
) -> None:
    number = "9434765919"
    paths = [
        f"/v1/agencies/{number}",
        f"/v1/connectors/{number}",
        f"/v1/escalations/{number}",
        f"/v1/escalations/{number}/history",
        f"/v1/partnerships/{number}/overview",
        f"/v1/dead-letters?after={number}",
        f"/v1/escalations?cursor={number}",
        f"/v1/dead-letters?after={number}%20",  # refused by the parameter's pattern
        f"/v1/escalations?cursor={number}*",
        f"/v1/escalations?limit={number}",
        f"/v1/{number}",  # no such route
    ]
    token = scan.stack.admin_token
    with httpx.Client(
        base_url=scan.stack.base_url, headers={"authorization": f"Bearer {token}"}
    ) as client:
        answers = [client.get(p) for p in paths]
        answers += [client.post(f"/v1/dead-letters/{number}/replay")]
        answers += [client.post(f"/v1/connectors/{number}/events", content=b"[]")]
    echoed = [a.request.url.path for a in answers if number in a.text]
    attacks.record(
        "leaks",
        "identifier put in a path or query echoed in the error",
        tried=len(answers),
        refused=len(answers) - len(echoed),
    )
    assert echoed == []
