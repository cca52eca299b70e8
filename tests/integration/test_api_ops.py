"""Operations and errors: health, readiness, metrics, dead letters, problem+json everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.bootstrap import Hub
from gateway.store.models import Delivery, OutboxMessage
from tests.integration.test_api_helpers import (
    ADMIN,
    agency_headers,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
    serve,
)

PROBLEM = "application/problem+json"


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = make_hub(sqlite_url, max_body_bytes=4096)
    yield hub
    hub.close()


@pytest.fixture
def api(hub: Hub) -> Iterator[httpx.Client]:
    with serve(hub, broker_ready=lambda: True) as client:
        yield client


def test_healthz_answers_without_touching_the_database(tmp_path: Path) -> None:
    (tmp_path / "unopenable").mkdir()
    hub = make_hub(f"sqlite:///{tmp_path}/unopenable", create_tables=False)
    try:
        with serve(hub, broker_ready=lambda: False) as api:
            health = api.get("/healthz")
            ready = api.get("/readyz")
    finally:
        hub.close()

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["down"] == ["broker", "database"]


def test_readyz_is_200_when_the_database_and_broker_answer(api: httpx.Client) -> None:
    response = api.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "up", "broker": "up"}


def test_readyz_is_a_503_problem_when_the_broker_is_not_ready(hub: Hub) -> None:
    with serve(hub, broker_ready=lambda: False) as api:
        response = api.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["down"] == ["broker"]
    assert "broker" in response.json()["detail"]


def _sample(api: httpx.Client, line_prefix: str) -> float:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = [line for line in response.text.splitlines() if line.startswith(line_prefix + " ")]
    return float(found[0].split()[-1]) if found else 0.0


def test_metrics_count_accepted_and_refused_events(api: httpx.Client) -> None:
    accepted = 'eh_events_accepted_total{type="raised"}'
    refused = 'eh_events_refused_total{reason="signature"}'
    token = register_agency(api, "nhft")
    register_agency(api, "nnc", kind="social_care")
    connector_id, secret = register_connector(api, "nhft", token)
    before = _sample(api, accepted), _sample(api, refused)

    assert post_signed(api, connector_id, secret, raised_event("nhft", "nnc")).status_code == 202
    forged = post_signed(api, connector_id, "whsec_" + "A" * 44, raised_event("nhft", "nnc"))

    assert forged.status_code == 401
    assert (_sample(api, accepted), _sample(api, refused)) == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/route", 404), ("DELETE", "/healthz", 405), ("GET", "/v1/agencies", 405)],
)
def test_unknown_routes_and_methods_are_problems(
    api: httpx.Client, method: str, path: str, status: int
) -> None:
    response = api.request(method, path)

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == status
    if status == 405:
        assert response.headers["allow"]


def test_request_validation_errors_are_problems_that_never_echo_the_input(
    api: httpx.Client,
) -> None:
    body = {"id": "x-sentinel-value-X", "name": "N", "kind": "Sentinel", "partnerships": []}

    response = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"id", "kind", "partnerships"}
    assert "entinel" not in response.text


def test_a_json_body_over_the_limit_is_refused_with_413_on_any_route(api: httpx.Client) -> None:
    body = {
        "id": "nhft",
        "name": "x" * 5000,
        "kind": "health",
        "partnerships": ["northamptonshire"],
    }

    response = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


def test_openapi_is_served_with_the_problem_schema(api: httpx.Client) -> None:
    response = api.get("/v1/openapi.json")

    assert response.status_code == 200
    spec = response.json()
    assert "/v1/connectors/{connector_id}/events" in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]
    refused = spec["paths"]["/v1/agencies"]["post"]["responses"]["409"]
    assert PROBLEM in refused["content"]


def _dead_letter(hub: Hub, delivery_id: str, connector_id: str, status: str = "dead") -> None:
    now = hub.clock()
    with hub.sessions() as session:
        session.add(
            Delivery(
                id=delivery_id,
                escalation_id="esc-1",
                connector_id=connector_id,
                channel="webhook",
                target="http://127.0.0.1:9/hook?token=Sentinel",
                document_sealed=hub.sealer.seal({}, context=f"delivery:{delivery_id}"),
                status=status,
                attempts=6,
                last_status=503,
                last_error="HTTP 503",
                created_at=now - timedelta(minutes=5),
                finished_at=now,
            )
        )
        session.commit()


def test_the_administrator_lists_and_replays_dead_letters(hub: Hub) -> None:
    pokes: list[str] = []
    with serve(hub, on_accepted=lambda: pokes.append("poke")) as api:
        token = register_agency(api, "nhft")
        connector_id, _ = register_connector(api, "nhft", token)
        _dead_letter(hub, "del-1", connector_id)
        listed = api.get("/v1/dead-letters", headers=ADMIN)
        replayed = api.post("/v1/dead-letters/del-1/replay", headers=ADMIN)
        again = api.post("/v1/dead-letters/del-1/replay", headers=ADMIN)
        unknown = api.post("/v1/dead-letters/nope/replay", headers=ADMIN)
        as_agency = api.get("/v1/dead-letters", headers=agency_headers(token))

    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert (item["id"], item["target_host"], item["attempts"]) == ("del-1", "127.0.0.1", 6)
    assert "Sentinel" not in listed.text
    assert replayed.status_code == 202
    assert again.status_code == 409
    assert unknown.status_code == 404
    assert as_agency.status_code == 403
    assert pokes == ["poke"]
    with hub.sessions() as session:
        delivery = session.get(Delivery, "del-1")
        assert delivery is not None
        assert delivery.status == "pending"
        outbox = session.scalars(select(OutboxMessage.payload)).all()
    assert {"delivery_id": "del-1"} in outbox


def test_a_malformed_json_body_on_a_json_route_is_a_problem_naming_the_body(
    api: httpx.Client,
) -> None:
    response = api.post(
        "/v1/agencies",
        content=b'{"id": "nhft", ',
        headers={**ADMIN, "content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    [error] = response.json()["errors"]
    assert error["field"] == "(body)"
    assert "not JSON" in error["problem"]


def test_any_route_answers_503_with_retry_after_while_the_database_is_unreachable(
    tmp_path: Path,
) -> None:
    (tmp_path / "unopenable").mkdir()
    hub = make_hub(f"sqlite:///{tmp_path}/unopenable", create_tables=False)
    well_formed = "ehk_" + "0" * 16 + "_" + "1" * 64
    try:
        with serve(hub) as api:
            as_agency = api.get("/v1/escalations", headers=agency_headers(well_formed))
            as_admin = api.get("/v1/dead-letters", headers=ADMIN)
    finally:
        hub.close()

    for response in (as_agency, as_admin):
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.headers["content-type"] == PROBLEM
