"""Keyed pseudonyms: the hub links escalations about one child without keeping who the child is.

On both profiles (SQLite + in-process bus, PostgreSQL + RabbitMQ): two escalations about the
same child, the NHS number written differently, share one pseudonym; another child gets
another; and a scan of every table finds no NHS number, name, birth date or narrative in
clear. A hub with another pseudonym key gives the same child another pseudonym.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from gateway.demo.stack import Stack
from gateway.store.models import EscalationRow
from security.pseudonyms import NHS_KIND, pseudonym
from tests.conftest import fresh_pg_database
from tests.security.conftest import Attacks
from tests.security.world import CHILD, World, build_world, event, raised_data

SAME_CHILD = {**CHILD, "nhs_number": "9434765919"}  # the world's child, without the spaces
OTHER_CHILD = {"nhs_number": "401 023 2137", "given_name": "Kit", "family_name": "Otherchild"}
NARRATIVE = "Nursery reports bruising; the threshold decision is disputed."
IN_CLEAR = (
    "9434765919",
    "943 476 5919",
    "4010232137",
    "401 023 2137",
    CHILD["given_name"],
    CHILD["family_name"],
    CHILD["date_of_birth"],
    "Otherchild",
    NARRATIVE,
)


def _profiles() -> list[Any]:
    return [
        pytest.param("embedded", id="sqlite-memory"),
        pytest.param(
            "servers", id="postgresql-rabbitmq", marks=[pytest.mark.postgres, pytest.mark.rabbitmq]
        ),
    ]


@pytest.fixture(scope="module", params=_profiles())
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "embedded":
        with Stack() as stack:
            yield from _opened(stack)
        return
    with fresh_pg_database() as database_url:
        amqp = request.getfixturevalue("amqp_url")
        prefix = f"sec{uuid.uuid4().hex[:8]}"
        with Stack(database_url=database_url, broker_url=amqp, bus_prefix=prefix) as stack:
            yield from _opened(stack)


def _opened(stack: Stack) -> Iterator[World]:
    """The world, plus an escalation about the same child and one about another child."""
    built = build_world(stack)
    try:
        for child in (SAME_CHILD, OTHER_CHILD):
            data = raised_data("nct-csc", child=child, summary=NARRATIVE)
            answer = built.post_events(built.members["nct-csc"], event("raised", data))
            assert answer.status_code == 202, answer.text
        yield built
    finally:
        built.close()


def _pseudonyms(world: World) -> list[str | None]:
    assert world.stack.hub is not None
    with world.stack.hub.sessions() as session:
        rows = session.scalars(select(EscalationRow).order_by(EscalationRow.opened_at)).all()
        return [row.child_pseudonym for row in rows]


def test_two_escalations_about_one_child_share_a_pseudonym_and_another_child_differs(
    world: World, attacks: Attacks
) -> None:
    first, same, other = _pseudonyms(world)
    assert first is not None
    assert other is not None
    assert first == same
    assert other != first
    assert world.stack.hub is not None
    assert first == pseudonym(world.stack.hub.pseudonym_key, NHS_KIND, CHILD["nhs_number"])
    what = "one child, NHS number spaced or not: linked by pseudonym"
    dialect = world.stack.hub.engine.dialect.name
    attacks.record("pseudonyms", what, tried=1, refused=1, note=dialect)


def _dump(engine: Engine) -> str:
    """Every value of every table as text (bytes as latin-1, so sealed blobs stay opaque)."""
    metadata = MetaData()
    metadata.reflect(engine)
    chunks: list[str] = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for value in row:
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    chunks.append(
                        value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    )
    return "\n".join(chunks)


def test_no_table_holds_the_childs_identity_or_the_narrative_in_clear(
    world: World, attacks: Attacks
) -> None:
    assert world.stack.hub is not None
    dumped = _dump(world.stack.hub.engine)
    assert world.escalation_id in dumped  # the scan does read the data
    found = [secret for secret in IN_CLEAR if secret in dumped]
    attacks.record(
        "pseudonyms",
        "identifiers and narrative looked for in every table",
        tried=len(IN_CLEAR),
        refused=len(IN_CLEAR) - len(found),
        note=world.stack.hub.engine.dialect.name,
    )
    assert found == []


def test_a_hub_with_another_pseudonym_key_gives_the_same_child_another_pseudonym(
    world: World, attacks: Attacks
) -> None:
    with Stack() as stack:
        other = build_world(stack, raise_escalation=False)
        try:
            answer = other.post_events(other.members["nhft"], event("raised", raised_data("nhft")))
            assert answer.status_code == 202, answer.text
            theirs = _pseudonyms(other)[0]
        finally:
            other.close()
    ours = _pseudonyms(world)[0]
    assert theirs is not None
    assert theirs.startswith("nhs:")
    assert world.stack.hub is not None
    attacks.record(
        "pseudonyms",
        "linking one child across hubs with different keys",
        note=world.stack.hub.engine.dialect.name,
        tried=1,
        refused=int(theirs != ours),
    )
    assert theirs != ours
