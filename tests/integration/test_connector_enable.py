"""A connector disabled by a 410 can be enabled again by its agency, and only by it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update

from gateway.demo.stack import Stack
from gateway.demo.story import Story, register
from gateway.store.db import transaction
from gateway.store.models import AuditEntry, Connector


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
