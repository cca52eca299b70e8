"""Ingest against real stores: SQLite files and the real PostgreSQL (a schema per test).

The helpers here (``hub`` fixture, agencies, events) are shared with test_routing and
test_scheduler.
"""

from __future__ import annotations

import base64
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub, build_hub
from gateway.bus.topology import partition_for
from gateway.services.errors import Forbidden, Invalid, NotFound, Unavailable
from gateway.services.ingest import accept
from gateway.settings import Settings
from gateway.store.models import (
    Agency,
    AuditEntry,
    Base,
    Connector,
    EscalationRow,
    IdempotentResponse,
    InboundEvent,
    OutboxMessage,
    Party,
)
from schemas.envelope import AgencyEvent, Raised, agency_event_adapter

SOCIAL, HEALTH, OFFICE = "nn-social-care", "nn-health", "nscp-office"
PARTNERSHIP = "northamptonshire"
SOURCE = "urn:test:case-system"
NHS = "943 476 5919"
CHILD_NAME = "Zebediah-Quill"
SUMMARY = "Narrative-7f3a: the school nurse saw bruising that nobody followed up"
MONDAY_0930 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class Clock:
    """A settable clock for the hub."""

    def __init__(self, now: datetime = MONDAY_0930) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _settings(database_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        data_keys=f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}",
        data_key_active="k1",
        pseudonym_key=secrets.token_hex(32),
        admin_token=secrets.token_hex(16),
        audit_signing_key=base64.b64encode(secrets.token_bytes(32)).decode(),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, tmp_path: Any, clock: Clock) -> Iterator[Hub]:
    """A hub with all tables and two agencies of Northamptonshire, on each real store."""
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path}/hub.sqlite3", None
    else:
        url, drop = _pg_schema(request.getfixturevalue("pg_url"))
    built = build_hub(_settings(url), clock=clock)
    Base.metadata.create_all(built.engine)
    add_agency(built, SOCIAL, connectors={"sc-mosaic": "active"})
    add_agency(built, HEALTH, kind="health", connectors={"hl-systmone": "active"})
    try:
        yield built
    finally:
        built.close()
        if drop is not None:
            drop()


def _pg_schema(pg_url: str) -> tuple[str, Any]:
    """A fresh schema in the session's database; the URL puts it first on the search path."""
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    return f"{pg_url}?options=-csearch_path%3D{schema}", drop


def add_agency(
    hub: Hub,
    agency_id: str,
    *,
    kind: str = "social_care",
    partnerships: tuple[str, ...] = (PARTNERSHIP,),
    notify_email: str | None = None,
    connectors: dict[str, str] | None = None,
) -> None:
    """An agency row and its connectors ({connector id: status}), callbacks on loopback."""
    now = hub.clock()
    with hub.sessions.begin() as session:
        session.add(
            Agency(
                id=agency_id,
                name=agency_id.replace("-", " ").title(),
                kind=kind,
                partnerships={"ids": list(partnerships)},
                notify_email=notify_email,
                credential_id=uuid.uuid4().hex[:16],
                credential_hash="sha256$" + "0" * 32 + "$" + "0" * 64,
                created_at=now,
            )
        )
        session.flush()
        for connector_id, status in (connectors or {}).items():
            session.add(
                Connector(
                    id=connector_id,
                    agency_id=agency_id,
                    kind="generic",
                    callback_url=f"http://127.0.0.1:9/{connector_id}",
                    public_jwk={},
                    secrets_sealed=b"",
                    status=status,
                    created_at=now,
                )
            )


def raised(
    event_id: str = "raise-1",
    *,
    by: str = SOCIAL,
    other: str = "",
    partnership: str = PARTNERSHIP,
    nhs: str | None = NHS,
    agencyref: str | None = "SC-0001",
) -> Raised:
    """A ``raised`` by ``by`` against ``other`` (default: the other Northamptonshire agency)."""
    other = other or (HEALTH if by != HEALTH else SOCIAL)
    identifiers: dict[str, Any] = {"given_name": CHILD_NAME, "local_ids": {"mosaic": "M-77"}}
    if nhs is not None:
        identifiers["nhs_number"] = nhs
    document: dict[str, Any] = {
        "type": "uk.escalation-hub.v1.raised",
        "id": event_id,
        "source": SOURCE,
        "time": "2026-03-02T09:00:00Z",
        "data": {
            "partnership": partnership,
            "raised_by": {"agency_id": by, "name": "A Practitioner", "role": "practitioner"},
            "parties": [
                {"agency_id": by, "kind": "social_care"},
                {"agency_id": other, "kind": "health"},
            ],
            "child": {"identifiers": identifiers},
            "concern_categories": ["thresholds"],
            "summary": SUMMARY,
        },
    }
    if agencyref is not None:
        document["agencyref"] = agencyref
    return Raised.model_validate(document)


def action(
    kind: str, subject: str | None, event_id: str, *, by: str = HEALTH, **data: Any
) -> AgencyEvent:
    """An agency action (acknowledged, escalated, resolved...) about ``subject``."""
    document: dict[str, Any] = {
        "type": f"uk.escalation-hub.v1.{kind}",
        "id": event_id,
        "source": SOURCE,
        "time": "2026-03-02T10:00:00Z",
        "data": {"by": {"agency_id": by, "name": "A Manager", "role": "line_manager"}, **data},
    }
    if subject is not None:
        document["subject"] = subject
    return agency_event_adapter.validate_python(document)


def escalated(subject: str, event_id: str, *, by: str = HEALTH) -> AgencyEvent:
    attempt = {"at": "2026-03-02T09:45:00Z", "method": "telephone", "summary": "talked it through"}
    evidence = {"attempts": [attempt], "exhausted": True}
    return action("escalated", subject, event_id, by=by, evidence=evidence)


def send(hub: Hub, *events: AgencyEvent, agency: str = SOCIAL, webhook_id: str = "") -> Any:
    """Accept a batch from the agency's first connector; return the 202 body."""
    connector = "sc-mosaic" if agency == SOCIAL else "hl-systmone"
    answer = accept(
        hub,
        connector_id=connector,
        agency_id=agency,
        webhook_id=webhook_id or f"msg_{uuid.uuid4().hex}",
        events=list(events),
    )
    assert answer.status_code == 202
    return answer.body


def count(hub: Hub, model: type[Base]) -> int:
    with Session(hub.engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_raised_event_is_stored_with_its_escalation_parties_and_decide_message(
    hub: Hub,
) -> None:
    body = send(hub, raised())
    [entry] = body["accepted"]
    escalation_id = entry["escalation_id"]
    assert entry == {
        "id": "raise-1",
        "source": SOURCE,
        "type": "uk.escalation-hub.v1.raised",
        "escalation_id": escalation_id,
        "sequence": 1,
        "duplicate": False,
    }
    with Session(hub.engine) as session:
        row = session.get(EscalationRow, escalation_id)
        assert row is not None
        assert (row.status, row.next_seq, row.applied_seq, row.procedure_id) == (
            "pending",
            2,
            0,
            "northamptonshire",
        )
        assert (row.child_pseudonym or "").startswith("nhs:")
        references = dict(session.execute(select(Party.agency_id, Party.case_reference)).all())
        assert references == {SOCIAL: "SC-0001", HEALTH: None}
        event = session.scalars(select(InboundEvent)).one()
        assert (event.seq, event.agency_id, event.connector_id) == (1, SOCIAL, "sc-mosaic")
        stored = hub.sealer.unseal(event.body_sealed, context=f"inbound:{SOURCE}#raise-1")
        assert stored["subject"] == escalation_id
        assert stored["data"]["child"]["pseudonyms"][0] == row.child_pseudonym
        message = session.scalars(select(OutboxMessage)).one()
        assert message.message_id == f"decide:{escalation_id}:1"
        assert message.routing_key == str(partition_for(escalation_id, 4))
        assert message.payload == {"escalation_id": escalation_id}
        assert session.scalars(select(IdempotentResponse)).one().body == body


def test_the_same_child_gets_the_same_pseudonym_however_the_nhs_number_is_spaced(
    hub: Hub,
) -> None:
    first = send(hub, raised("r-a", nhs="943 476 5919"))["accepted"][0]["escalation_id"]
    second = send(hub, raised("r-b", nhs="9434765919"))["accepted"][0]["escalation_id"]
    with Session(hub.engine) as session:
        a, b = (session.get(EscalationRow, i) for i in (first, second))
        assert a is not None
        assert b is not None
        assert a.child_pseudonym == b.child_pseudonym
        assert NHS.replace(" ", "") not in (a.child_pseudonym or "")


def test_a_repeated_webhook_id_gets_the_first_answer_and_stores_nothing_more(hub: Hub) -> None:
    first = send(hub, raised(), webhook_id="msg_1")
    again = send(hub, raised("another-id"), webhook_id="msg_1")
    assert again == first
    assert (count(hub, InboundEvent), count(hub, EscalationRow), count(hub, OutboxMessage)) == (
        1,
        1,
        1,
    )


def test_an_event_already_stored_is_reported_as_a_duplicate_and_changes_nothing(hub: Hub) -> None:
    first, twice = send(hub, raised(), raised())["accepted"]
    again = send(hub, raised())["accepted"][0]
    assert again == twice == {**first, "duplicate": True}
    assert (count(hub, InboundEvent), count(hub, EscalationRow), count(hub, OutboxMessage)) == (
        1,
        1,
        1,
    )


def test_a_connector_may_only_send_its_own_agencys_actions(hub: Hub) -> None:
    with pytest.raises(Forbidden) as refused:
        send(hub, raised(by=HEALTH), agency=SOCIAL)
    assert refused.value.status == 403
    assert refused.value.field == "[0].data.raised_by.agency_id"
    subject = send(hub, raised())["accepted"][0]["escalation_id"]
    with pytest.raises(Forbidden) as refused:
        send(hub, action("acknowledged", subject, "ack-1", by=HEALTH), agency=SOCIAL)
    assert refused.value.field == "[0].data.by.agency_id"


def test_an_agency_may_raise_only_in_its_own_partnerships(hub: Hub) -> None:
    add_agency(hub, "bucks-police", kind="police", partnerships=("buckinghamshire",))
    with pytest.raises(Forbidden) as refused:
        accept(
            hub,
            connector_id="none",
            agency_id="bucks-police",
            webhook_id="msg_x",
            events=[raised(by="bucks-police")],
        )
    assert refused.value.field == "[0].data.partnership"


def test_a_partnership_without_a_procedure_is_invalid_and_the_known_ones_are_named(
    hub: Hub,
) -> None:
    add_agency(hub, "far-away", partnerships=("atlantis",))
    with pytest.raises(Invalid) as refused:
        accept(
            hub,
            connector_id="none",
            agency_id="far-away",
            webhook_id="msg_y",
            events=[raised(by="far-away", partnership="atlantis")],
        )
    assert refused.value.status == 422
    assert refused.value.field == "[0].data.partnership"
    assert "northamptonshire" in refused.value.detail


def test_an_invalid_nhs_number_is_refused_without_repeating_it(hub: Hub) -> None:
    with pytest.raises(Invalid) as refused:
        send(hub, raised(nhs="943 476 5918"))
    assert refused.value.field == "[0].data.child.identifiers.nhs_number"
    shown = str(refused.value) + refused.value.detail
    assert "5918" not in shown
    assert "943" not in shown
    assert count(hub, InboundEvent) == 0


def test_an_agency_may_not_use_a_source_reserved_for_the_hub(hub: Hub) -> None:
    forged = raised().model_copy(update={"source": "urn:escalation-hub:scheduler"})
    with pytest.raises(Invalid) as refused:
        send(hub, forged)
    assert refused.value.field == "[0].source"
    assert count(hub, InboundEvent) == 0


def test_an_action_without_a_subject_is_invalid(hub: Hub) -> None:
    with pytest.raises(Invalid) as refused:
        send(hub, action("acknowledged", None, "ack-1"), agency=HEALTH)
    assert refused.value.field == "[0].subject"


def test_a_non_party_and_an_unknown_escalation_get_the_same_not_found_and_are_audited(
    hub: Hub,
) -> None:
    add_agency(hub, "nn-police", kind="police", connectors={"pol-niche": "active"})
    subject = send(hub, raised())["accepted"][0]["escalation_id"]
    answers, targets = [], [subject, str(uuid.uuid4())]
    for target in targets:
        with pytest.raises(NotFound) as refused:
            accept(
                hub,
                connector_id="pol-niche",
                agency_id="nn-police",
                webhook_id=f"msg_{target}",
                events=[action("acknowledged", target, f"ack-{target}", by="nn-police")],
            )
        answers.append((refused.value.status, refused.value.field))
        assert target in refused.value.detail
    assert answers == [(404, "[0].subject")] * 2
    with Session(hub.engine) as session:
        denied = session.scalars(select(AuditEntry).where(AuditEntry.action == "access_denied"))
        assert [(e.actor, e.escalation_id) for e in denied] == [("nn-police", t) for t in targets]
    assert count(hub, InboundEvent) == 1


def test_a_refused_batch_stores_nothing_at_all(hub: Hub) -> None:
    good, foreign = raised("r-good"), raised("r-foreign", by=HEALTH)
    with pytest.raises(Forbidden) as refused:
        send(hub, good, foreign, webhook_id="msg_batch")
    assert refused.value.field == "[1].data.raised_by.agency_id"
    for model in (InboundEvent, EscalationRow, Party, OutboxMessage, IdempotentResponse):
        assert count(hub, model) == 0, model.__name__
    assert send(hub, good, webhook_id="msg_batch")["accepted"][0]["sequence"] == 1


def test_actions_are_numbered_in_order_and_fill_in_the_partys_own_reference(hub: Hub) -> None:
    subject = send(hub, raised())["accepted"][0]["escalation_id"]
    ack = action("acknowledged", subject, "ack-1").model_copy(update={"agencyref": "H-42"})
    body = send(hub, ack, escalated(subject, "esc-1"), agency=HEALTH)
    assert [e["sequence"] for e in body["accepted"]] == [2, 3]
    social_ref = action("acknowledged", subject, "ack-2", by=SOCIAL).model_copy(
        update={"agencyref": "SC-OTHER"}
    )
    send(hub, social_ref)
    with Session(hub.engine) as session:
        references = dict(session.execute(select(Party.agency_id, Party.case_reference)).all())
        assert references == {SOCIAL: "SC-0001", HEALTH: "H-42"}  # already known: kept
        keys = session.scalars(select(OutboxMessage.message_id).order_by(OutboxMessage.pk))
        assert list(keys) == [f"decide:{subject}:{n}" for n in (1, 2, 3, 4)]


def test_concurrent_requests_with_one_webhook_id_all_get_the_winners_answer(hub: Hub) -> None:
    barrier, answers = threading.Barrier(4), []

    def post() -> None:
        barrier.wait()
        answers.append(send(hub, raised(), webhook_id="msg_race"))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4  # a thread that raised (pytest reports it) appended nothing
    assert all(a == answers[0] for a in answers)
    assert (count(hub, InboundEvent), count(hub, EscalationRow)) == (1, 1)


def test_concurrent_actions_on_one_escalation_are_numbered_without_gaps_or_repeats(
    hub: Hub,
) -> None:
    subject = send(hub, raised())["accepted"][0]["escalation_id"]
    barrier, numbers = threading.Barrier(6), []

    def post(n: int) -> None:
        barrier.wait()
        body = send(hub, action("acknowledged", subject, f"ack-{n}"), agency=HEALTH)
        numbers.append(body["accepted"][0]["sequence"])

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == [2, 3, 4, 5, 6, 7]
    with Session(hub.engine) as session:
        row = session.get_one(EscalationRow, subject)
        assert row.next_seq == 8


def test_an_unreachable_database_is_unavailable_and_says_to_retry() -> None:
    unreachable = build_hub(_settings("postgresql://eh@127.0.0.1:9/none?connect_timeout=2"))
    try:
        with pytest.raises(Unavailable) as refused:
            send(unreachable, raised())
    finally:
        unreachable.close()
    assert refused.value.status == 503
    assert "retry" in refused.value.detail
