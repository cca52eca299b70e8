"""The API end to end on the real PostgreSQL: register, ingest signed events, read scoped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from gateway.bootstrap import Hub
from gateway.services.routing import handle_decide
from gateway.store.models import AuditEntry, InboundEvent
from tests.integration.test_api_helpers import (
    ADMIN,
    NHS_NUMBER,
    agency_headers,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
    serve,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def hub(pg_url: str) -> Iterator[Hub]:
    hub = make_hub(pg_url)
    yield hub
    hub.close()


@pytest.fixture
def api(hub: Hub) -> Iterator[httpx.Client]:
    with serve(hub) as client:
        yield client


def _ids() -> tuple[str, str, str]:
    """Agency ids of this test alone (the database is shared by the whole session)."""
    tag = uuid.uuid4().hex[:8]
    return f"raiser-{tag}", f"other-{tag}", f"outsider-{tag}"


def test_a_signed_event_is_accepted_once_and_read_only_by_its_parties(
    api: httpx.Client, hub: Hub
) -> None:
    raiser, other, outsider = _ids()
    token = register_agency(api, raiser)
    register_agency(api, other, kind="social_care")
    stranger = register_agency(api, outsider, kind="police")
    connector_id, secret = register_connector(api, raiser, token)
    event = raised_event(raiser, other, event_id=f"evt-{raiser}")

    first = post_signed(api, connector_id, secret, event, webhook_id=f"wh-{raiser}")
    again = post_signed(api, connector_id, secret, event, webhook_id=f"wh-{raiser}")
    escalation_id = first.json()["accepted"][0]["escalation_id"]
    handle_decide(hub, f"decide:{escalation_id}:1", {"escalation_id": escalation_id})
    mine = api.get(f"/v1/escalations/{escalation_id}", headers=agency_headers(token))
    theirs = api.get(f"/v1/escalations/{escalation_id}", headers=agency_headers(stranger))

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert mine.status_code == 200
    assert mine.json()["state"]["child"]["identifiers"]["nhs_number"] == NHS_NUMBER
    assert theirs.status_code == 404
    with hub.sessions() as session:
        stored = session.scalar(
            select(func.count()).where(InboundEvent.escalation_id == escalation_id)
        )
        denied = session.scalars(
            select(AuditEntry.actor).where(
                AuditEntry.action == "access_denied", AuditEntry.escalation_id == escalation_id
            )
        ).all()
    assert stored == 1
    assert denied == [f"agency:{outsider}"]


def test_registering_an_agency_twice_is_a_conflict_on_postgres(api: httpx.Client) -> None:
    raiser, _, _ = _ids()
    register_agency(api, raiser)
    body = {"id": raiser, "name": "Again", "kind": "health", "partnerships": ["northamptonshire"]}

    response = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/agencies/a%00b",
        "/v1/escalations/a%00b",
        "/v1/escalations/a%00b/history",
        "/v1/partnerships/a%00b/overview",
        "/v1/connectors/a%00b",
        "/v1/escalations?status=%00",
        "/v1/escalations?partnership=%00",
        "/v1/dead-letters?after=%00",
    ],
)
def test_a_nul_in_a_path_or_query_is_a_422_naming_it_not_a_database_error(
    api: httpx.Client, path: str
) -> None:
    # PostgreSQL text cannot hold NUL: such a value must be refused before any query
    response = api.get(path, headers=ADMIN)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    named = response.json()["field"]
    assert named in {"agency_id", "escalation_id", "partnership_id", "connector_id"} | {
        "status",
        "partnership",
        "after",
    }


def test_a_nul_in_the_events_path_is_a_422_not_a_database_error(api: httpx.Client) -> None:
    response = api.post("/v1/connectors/a%00b/events", content=b"[]")

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "connector_id"
