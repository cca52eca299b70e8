"""End to end: three case systems drive one escalation through the hub in their own formats.

Children's social care raises it (JSON workflow events), health escalates it (FHIR R4 Tasks)
and police resolve it (records-management XML); each names the escalation only by its own case
reference. The same story runs on the embedded default (SQLite + in-process bus) and on
PostgreSQL + RabbitMQ. Receivers decrypt with their own private keys, verify Standard Webhooks
signatures with libraries of their own (joserfc, standardwebhooks), never the hub's code, and
read every update in their own format.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from connectors.simulator import Received
from gateway.demo.documents import REFERENCES
from gateway.demo.stack import Stack
from gateway.demo.story import Story, register, walk
from gateway.store.db import make_engine
from tests.conftest import fresh_pg_database

CHILD_SECRETS = ("9434765919", "943 476 5919", "Sam", "Example", "2015-06-01", "P1234567")
NATIVE = {  # agency -> (media type, how its own format begins)
    "nct-csc": ("application/json", b'{"caseId":'),
    "nhft": ("application/fhir+json", b'{"resourceType":"Task"'),
    "nhants-police": ("application/xml", b"<?xml"),
}


def _profiles() -> list[Any]:
    return [
        pytest.param("embedded", id="embedded-sqlite-memory"),
        pytest.param(
            "servers", id="postgresql-rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq]
        ),
    ]


@pytest.fixture(scope="module", params=_profiles())
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """One hub per profile; the story runs once and the tests below examine it."""
    if request.param == "embedded":
        with Stack() as running:
            yield running
        return
    with fresh_pg_database() as database_url:
        broker_url = request.getfixturevalue("amqp_url")
        prefix = f"e2e{uuid.uuid4().hex[:8]}"
        with Stack(database_url=database_url, broker_url=broker_url, bus_prefix=prefix) as running:
            yield running


@pytest.fixture(scope="module")
def story(stack: Stack) -> Iterator[Story]:
    told: list[str] = []
    story = register(stack.base_url, stack.admin_token, told.append)
    try:
        walk(story, stack.inbox, told.append)
        yield story
    finally:
        story.close()


def test_every_party_files_every_update_in_order_under_its_own_reference(story: Story) -> None:
    for agency_id, agency in story.agencies.items():
        records = [u.record for u in story.updates(agency_id) if u.record is not None]
        assert [r.sequence for r in records] == list(range(1, 9))
        assert [r.stage for r in records] == [1, 1, 1, 2, 3, 4, 5, 5]
        assert records[-1].status == "resolved"
        assert {r.case_reference for r in records} == {REFERENCES[agency_id]}
        assert agency.system.refused == []


def test_the_escalation_was_raised_escalated_and_resolved_from_three_native_formats(
    story: Story,
) -> None:
    assert story.steps == [
        "raised",
        "acknowledged",
        "plan_agreed",
        "escalated",
        "escalated",
        "escalated",
        "escalated",
        "resolved",
    ]
    for agency_id, (media_type, opening) in NATIVE.items():
        updates = story.updates(agency_id)
        assert {u.media_type for u in updates} == {media_type}
        assert all(u.body.startswith(opening) for u in updates), agency_id


def test_only_the_opening_update_carries_the_child_and_only_inside_its_envelope(
    story: Story,
) -> None:
    for agency_id in story.agencies:
        updates: list[Received] = story.updates(agency_id)
        first = updates[0].record
        assert first is not None
        assert first.carries_child
        assert (first.nhs_number or "").replace(" ", "") == "9434765919"
        assert b"Example" in updates[0].body
        for later in updates[1:]:
            assert later.record is not None
            assert not later.record.carries_child
            assert not any(secret.encode() in later.body for secret in CHILD_SECRETS)


def test_business_office_hears_of_director_level_referral_and_resolution(
    story: Story, stack: Stack
) -> None:
    assert story.office is not None
    notes = [r.document for r in story.office.system.received]
    assert [(n["stage"], n["clause"]) for n in notes] == [
        (4, "Northamptonshire The Protocol"),
        (5, "Northamptonshire flowchart Stage 5"),
        (5, "Northamptonshire Recording and Communication"),
    ]
    assert len(stack.inbox.messages) == 3
    mail = "".join(m.as_string() for m in stack.inbox.messages)
    assert story.escalation_id in mail
    for secret in CHILD_SECRETS:
        assert secret not in mail
        assert secret not in json.dumps(notes)


def test_nothing_in_the_hubs_database_holds_the_child_or_the_narrative_in_clear(
    story: Story, stack: Stack
) -> None:
    assert stack.hub is not None
    engine = stack.hub.engine
    dumped = _dump(engine.url.render_as_string(hide_password=False))
    assert story.escalation_id in dumped  # the dump does see the data
    narratives = ("Referral not considered", "Joint home visit", "Mediation agreed an assessment")
    for secret in (*CHILD_SECRETS, *narratives):
        assert secret not in dumped


def _dump(url: str) -> str:
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    chunks: list[str] = []
    with engine.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                    if url.startswith("sqlite")
                    else "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            )
        ]
        for name in names:
            for row in conn.execute(text(f'SELECT * FROM "{name}"')):
                chunks.extend(
                    v.decode("latin-1")
                    if isinstance(v, bytes | memoryview) and not isinstance(v, memoryview)
                    else str(bytes(v).decode("latin-1"))
                    if isinstance(v, memoryview)
                    else str(v)
                    for v in row
                )
    engine.dispose()
    return "\n".join(chunks)
