"""A connector disabled by a 410 can be enabled again by its agency, and only by it; with
``replay=true`` its dead letters go back in its queue in the same step."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update

from gateway.demo.stack import Stack
from gateway.demo.story import Story, register
from gateway.store.db import transaction
from gateway.store.models import AuditEntry, Connector, Delivery, OutboxMessage


@pytest.fixture(scope="module")
def registered() -> Iterator[tuple[Stack, Story]]:
    with Stack() as stack:
        story = register(stack.base_url, stack.admin_token, lambda _line: None)
        try:
            yield stack, story
        finally:
            story.close()


def _disable(stack: Stack, connector_id: str) -> None:
    assert stack.hub is not None
    with transaction(stack.hub.sessions) as session:
        session.execute(
            update(Connector).where(Connector.id == connector_id).values(status="disabled")
        )


def test_the_owning_agency_enables_its_disabled_connector_and_it_is_audited(
    registered: tuple[Stack, Story],
) -> None:
    stack, story = registered
    agency = next(iter(story.agencies.values()))
    assert agency.client is not None
    _disable(stack, agency.client.connector_id)
    auth = {"authorization": f"Bearer {agency.credential}"}
    with httpx.Client(base_url=stack.base_url, headers=auth) as api:
        answer = api.post(f"/v1/connectors/{agency.client.connector_id}/enable")
    assert answer.status_code == 200
    assert answer.json()["status"] == "active"
    assert stack.hub is not None
    with transaction(stack.hub.sessions) as session:
        actions = session.scalars(select(AuditEntry.action)).all()
    assert "connector_enabled" in actions


def test_another_agency_cannot_enable_a_connector_it_does_not_own(
    registered: tuple[Stack, Story],
) -> None:
    stack, story = registered
    owner, other = list(story.agencies.values())[:2]
    assert owner.client is not None
    _disable(stack, owner.client.connector_id)
    auth = {"authorization": f"Bearer {other.credential}"}
    with httpx.Client(base_url=stack.base_url, headers=auth) as api:
        answer = api.post(f"/v1/connectors/{owner.client.connector_id}/enable")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert stack.hub is not None
    with transaction(stack.hub.sessions) as session:
        status = session.scalar(
            select(Connector.status).where(Connector.id == owner.client.connector_id)
        )
    assert status == "disabled"


def _dead_letters(stack: Stack, connector_id: str, n: int) -> list[str]:
    """``n`` dead deliveries of the connector, as a 410 or a disabled connector leaves them."""
    assert stack.hub is not None
    ids = [f"upd-{uuid.uuid4().hex[:8]}:{connector_id}" for _ in range(n)]
    with transaction(stack.hub.sessions) as session:
        for delivery_id in ids:
            session.add(
                Delivery(
                    id=delivery_id,
                    escalation_id="esc-held",
                    connector_id=connector_id,
                    channel="webhook",
                    target="http://127.0.0.1:9/held",
                    document_sealed=b"-",
                    status="dead",
                    attempts=0,
                    last_error="connector disabled",
                    created_at=datetime.now(UTC),
                    finished_at=datetime.now(UTC),
                )
            )
    return ids


def _replays(stack: Stack, delivery_ids: list[str]) -> list[tuple[str, str]]:
    assert stack.hub is not None
    with stack.hub.sessions() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "replay").order_by(AuditEntry.seq)
        )
        return [
            (e.detail["delivery_id"], e.actor)
            for e in entries
            if e.detail.get("delivery_id") in delivery_ids
        ]


def _statuses(stack: Stack, delivery_ids: list[str]) -> list[str]:
    assert stack.hub is not None
    with stack.hub.sessions() as session:
        found = {
            row.id: row.status for row in session.execute(select(Delivery.id, Delivery.status))
        }
    return [found[d] for d in delivery_ids]


def test_enabling_with_replay_puts_every_dead_letter_of_the_connector_back_in_one_step(
    registered: tuple[Stack, Story],
) -> None:
    stack, story = registered
    owner, other = story.agencies["nhants-police"], story.agencies["nct-csc"]
    assert owner.client is not None
    connector_id = owner.client.connector_id
    _disable(stack, connector_id)
    held = _dead_letters(stack, connector_id, 3)
    path = f"/v1/connectors/{connector_id}/enable"

    with httpx.Client(base_url=stack.base_url) as api:
        refused = api.post(
            path, params={"replay": "true"}, headers={"authorization": f"Bearer {other.credential}"}
        )
        plain = api.post(path, headers={"authorization": f"Bearer {owner.credential}"})
        assert (refused.status_code, plain.status_code) == (404, 200)
        assert plain.json()["replayed"] == 0
        assert _statuses(stack, held) == ["dead"] * 3  # enabling alone replays nothing
        assert _replays(stack, held) == []

        _disable(stack, connector_id)
        answer = api.post(
            path, params={"replay": "true"}, headers={"authorization": f"Bearer {owner.credential}"}
        )
    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["replayed"]) == ("active", 3)
    assert _replays(stack, held) == [(d, f"agency:{owner.id}") for d in held]
    assert stack.hub is not None
    with stack.hub.sessions() as session:
        query = select(OutboxMessage.message_id).where(OutboxMessage.topic == "deliver")
        pokes = [m for m in session.scalars(query) if any(d in m for d in held)]
    assert pokes == [f"deliver:{held[0]}:replay:1"]  # the lane sends all three in seq order
