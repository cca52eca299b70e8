"""Webhook replay over real HTTP: a webhook-id names one body; another body under it is 409."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.bootstrap import Hub
from gateway.metrics import REGISTRY
from gateway.store.models import EscalationRow, IdempotentResponse, InboundEvent
from gateway.store.models_security import WebhookFingerprint
from security.webhooks import new_secret, sign
from tests.integration.test_api_helpers import (
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
    serve,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def hub(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Hub]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else sqlite_url
    built = make_hub(url)
    yield built
    built.close()


@pytest.fixture
def client(hub: Hub) -> Iterator[httpx.Client]:
    with serve(hub) as http:
        yield http


@dataclass(frozen=True)
class Sender:
    """A health agency's connector, and the social care agency its escalations name."""

    connector_id: str
    secret: str
    health: str
    care: str

    def post(self, client: httpx.Client, event_id: str, webhook_id: str) -> httpx.Response:
        document = raised_event(self.health, self.care, event_id=event_id)
        return post_signed(client, self.connector_id, self.secret, document, webhook_id=webhook_id)


@pytest.fixture
def sender(client: httpx.Client) -> Sender:
    suffix = uuid.uuid4().hex[:8]  # the PostgreSQL database lasts the whole session
    health, care = f"nhft-{suffix}", f"nncc-{suffix}"
    token = register_agency(client, health)
    register_agency(client, care, kind="social_care")
    return Sender(*register_connector(client, health, token), health, care)


def counts(hub: Hub, connector_id: str) -> tuple[int, int, int, int]:
    """(inbound events, escalations, stored answers, fingerprints) of this connector."""
    with hub.sessions() as session:
        return (
            _count(session, InboundEvent, InboundEvent.connector_id == connector_id),
            _count(session, EscalationRow, None),
            _count(session, IdempotentResponse, IdempotentResponse.connector_id == connector_id),
            _count(session, WebhookFingerprint, WebhookFingerprint.connector_id == connector_id),
        )


def _count(session: Any, model: Any, where: Any) -> int:
    query = select(func.count()).select_from(model)
    return int(session.scalar(query if where is None else query.where(where)) or 0)


def refused_for_replay() -> float:
    return REGISTRY.get_sample_value("eh_events_refused_total", {"reason": "replay"}) or 0.0


def test_the_same_webhook_id_with_the_same_body_gets_the_first_answer_again(
    hub: Hub, client: httpx.Client, sender: Sender
) -> None:
    first = sender.post(client, "evt-1", "wh-1")
    before = counts(hub, sender.connector_id)

    again = sender.post(client, "evt-1", "wh-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert counts(hub, sender.connector_id) == before


def test_the_same_webhook_id_with_a_different_body_is_refused_and_changes_nothing(
    hub: Hub, client: httpx.Client, sender: Sender
) -> None:
    assert sender.post(client, "evt-1", "wh-1").status_code == 202
    before, refused = counts(hub, sender.connector_id), refused_for_replay()

    reused = sender.post(client, "evt-2", "wh-1")

    assert reused.status_code == 409
    assert reused.headers["content-type"] == "application/problem+json"
    problem = reused.json()
    assert problem["field"] == "webhook-id"
    assert "webhook-id reused with a different body" in problem["detail"]
    assert "Zebedee" not in reused.text  # nothing of the body is echoed
    assert counts(hub, sender.connector_id) == before
    assert refused_for_replay() == refused + 1


def test_a_request_with_a_bad_signature_claims_nothing(
    client: httpx.Client, sender: Sender
) -> None:
    body = json.dumps(raised_event(sender.health, sender.care, event_id="evt-1")).encode()
    headers = sign([new_secret()], "wh-1", datetime.now(UTC), body)  # not the connector's
    headers["content-type"] = "application/json"
    path = f"/v1/connectors/{sender.connector_id}/events"

    forged = client.post(path, content=body, headers=headers)
    genuine = sender.post(client, "evt-2", "wh-1")

    assert (forged.status_code, genuine.status_code) == (401, 202)


def test_a_refused_request_releases_its_id_for_a_corrected_body(
    hub: Hub, client: httpx.Client, sender: Sender
) -> None:
    invalid = raised_event(sender.health, sender.care, event_id="evt-1")
    del invalid["data"]["parties"]

    refused = post_signed(client, sender.connector_id, sender.secret, invalid, webhook_id="wh-1")
    corrected = sender.post(client, "evt-1", "wh-1")

    assert (refused.status_code, corrected.status_code) == (422, 202)
    assert counts(hub, sender.connector_id)[3] == 1


def test_concurrent_bodies_under_one_webhook_id_store_exactly_one(
    hub: Hub, client: httpx.Client, sender: Sender
) -> None:
    def attempt(n: int) -> int:
        return sender.post(client, f"evt-{n}", "wh-race").status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(attempt, range(6)))

    assert statuses == [202, 409, 409, 409, 409, 409]
    assert counts(hub, sender.connector_id)[0] == 1
