"""Signed ingest over real HTTP: 202 only once stored; each refusal is a problem, stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.bootstrap import Hub
from gateway.store.models import (
    Connector,
    EscalationRow,
    IdempotentResponse,
    InboundEvent,
    OutboxMessage,
    Party,
)
from security.webhooks import sign
from tests.integration.test_api_helpers import (
    CHILD_NAME,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
    serve,
)


@dataclass
class Ingest:
    hub: Hub
    api: httpx.Client
    connector_id: str
    secret: str
    pokes: list[str]

    def post(
        self, document: object, *, webhook_id: str = "wh-1", at: datetime | None = None
    ) -> httpx.Response:
        return post_signed(
            self.api, self.connector_id, self.secret, document, webhook_id=webhook_id, at=at
        )

    def count(self, model: type[object]) -> int:
        with self.hub.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def ingest(sqlite_url: str) -> Iterator[Ingest]:
    hub = make_hub(sqlite_url, max_body_bytes=16_384, max_batch=3)
    pokes: list[str] = []
    try:
        with serve(hub, on_accepted=lambda: pokes.append("poke")) as api:
            token = register_agency(api, "nhft")
            register_agency(api, "nnc", kind="social_care")
            connector_id, secret = register_connector(api, "nhft", token)
            yield Ingest(hub, api, connector_id, secret, pokes)
    finally:
        hub.close()


def _stored(ingest: Ingest) -> tuple[int, int, int]:
    return ingest.count(InboundEvent), ingest.count(OutboxMessage), ingest.count(EscalationRow)


def test_a_signed_raised_event_is_stored_before_202_with_its_ids(ingest: Ingest) -> None:
    response = ingest.post(raised_event("nhft", "nnc"))

    assert response.status_code == 202
    [entry] = response.json()["accepted"]
    assert entry["id"] == "evt-1"
    assert entry["sequence"] == 1
    with ingest.hub.sessions() as session:
        row = session.get(EscalationRow, entry["escalation_id"])
        assert row is not None
        parties = session.scalars(select(Party.agency_id).where(Party.escalation_id == row.id))
        assert set(parties) == {"nhft", "nnc"}
        inbound = session.scalars(select(InboundEvent)).one()
        assert CHILD_NAME.encode() not in inbound.body_sealed
    assert _stored(ingest) == (1, 1, 1)
    assert ingest.pokes == ["poke"]


def test_the_same_webhook_id_again_gets_the_same_answer_and_changes_nothing(ingest: Ingest) -> None:
    first = ingest.post(raised_event("nhft", "nnc"), webhook_id="wh-same")
    again = ingest.post(raised_event("nhft", "nnc"), webhook_id="wh-same")

    assert again.status_code == first.status_code == 202
    assert again.json() == first.json()
    assert _stored(ingest) == (1, 1, 1)
    assert ingest.count(IdempotentResponse) == 1


def test_a_bad_signature_is_refused_naming_the_header_and_stores_nothing(ingest: Ingest) -> None:
    body = json.dumps(raised_event("nhft", "nnc")).encode()
    headers = sign([ingest.secret], "wh-1", datetime.now(UTC), body)
    headers["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    response = ingest.api.post(
        f"/v1/connectors/{ingest.connector_id}/events", content=body, headers=headers
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "webhook-signature"
    assert ingest.secret not in response.text
    assert _stored(ingest) == (0, 0, 0)


def test_an_expired_timestamp_is_refused_naming_webhook_timestamp(ingest: Ingest) -> None:
    late = datetime.now(UTC) - timedelta(minutes=10)

    response = ingest.post(raised_event("nhft", "nnc"), at=late)

    assert response.status_code == 401
    assert response.json()["field"] == "webhook-timestamp"
    assert _stored(ingest) == (0, 0, 0)


def test_a_missing_signature_header_is_named(ingest: Ingest) -> None:
    body = json.dumps(raised_event("nhft", "nnc")).encode()
    headers = sign([ingest.secret], "wh-1", datetime.now(UTC), body)
    del headers["webhook-id"]

    response = ingest.api.post(
        f"/v1/connectors/{ingest.connector_id}/events", content=body, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["field"] == "webhook-id"


def test_a_wrong_field_is_a_422_problem_naming_its_path_without_the_value(ingest: Ingest) -> None:
    event = raised_event("nhft", "nnc")
    event["data"]["parties"] = "Secret-Sentinel-Value"
    second = raised_event("nhft", "nnc", event_id="evt-2")
    second["data"]["child"]["identifiers"]["nhs_number"] = "Sentinel-Nhs"

    single = ingest.post(event, webhook_id="wh-single")
    batch = ingest.post([raised_event("nhft", "nnc", event_id="ok"), event, second])

    assert single.status_code == batch.status_code == 422
    assert single.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in single.json()["errors"]] == ["[0].data.parties"]
    fields = {error["field"] for error in batch.json()["errors"]}
    assert fields == {"[1].data.parties", "[2].data.child.identifiers.nhs_number"}
    assert "Sentinel" not in single.text + batch.text
    assert _stored(ingest) == (0, 0, 0)


def test_an_unknown_event_type_is_refused_without_repeating_it(ingest: Ingest) -> None:
    event = {**raised_event("nhft", "nnc"), "type": "uk.escalation-hub.v1.Sentinel-Type"}

    response = ingest.post(event)
    untyped = ingest.post({"id": "x"}, webhook_id="wh-untyped")

    assert response.status_code == untyped.status_code == 422
    assert response.json()["errors"][0]["field"] == "[0].type"
    assert untyped.json()["errors"][0]["field"] == "[0].type"
    assert "Sentinel" not in response.text


def test_a_body_over_the_limit_is_refused_with_413_before_parsing(ingest: Ingest) -> None:
    padded = {**raised_event("nhft", "nnc"), "pad": "x" * 20_000}

    response = ingest.post(padded)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert _stored(ingest) == (0, 0, 0)


def test_a_streamed_body_without_length_is_counted_and_refused_at_the_limit(ingest: Ingest) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 1024

    response = ingest.api.post(
        f"/v1/connectors/{ingest.connector_id}/events",
        content=chunks(),
        headers={"webhook-id": "wh-1", "webhook-timestamp": "1", "webhook-signature": "v1,AA=="},
    )

    assert response.status_code == 413


def test_malformed_json_is_a_400_problem_with_its_position(ingest: Ingest) -> None:
    response = ingest.post(b'{"specversion": "1.0",\n  "id": }')

    assert response.status_code == 400
    assert response.json()["position"] == {"line": 2, "column": 9, "offset": 31}


def test_a_batch_over_the_maximum_or_empty_is_refused(ingest: Ingest) -> None:
    events = [raised_event("nhft", "nnc", event_id=f"e{i}") for i in range(4)]

    too_many = ingest.post(events, webhook_id="wh-many")
    empty = ingest.post([], webhook_id="wh-empty")

    assert too_many.status_code == empty.status_code == 422
    assert too_many.json()["field"] == "(body)"
    assert _stored(ingest) == (0, 0, 0)


def test_json_nested_too_deeply_is_refused(ingest: Ingest) -> None:
    deep: object = "leaf"
    for _ in range(40):
        deep = {"d": deep}

    response = ingest.post({**raised_event("nhft", "nnc"), "data": deep})

    assert response.status_code == 422
    assert response.json()["title"] == "JSON too deep"


def test_an_unknown_connector_is_404_and_a_disabled_one_403(ingest: Ingest) -> None:
    unknown = post_signed(ingest.api, "con_nope", ingest.secret, raised_event("nhft", "nnc"))
    with ingest.hub.sessions() as session:
        row = session.get(Connector, ingest.connector_id)
        assert row is not None
        row.status = "disabled"
        session.commit()

    disabled = ingest.post(raised_event("nhft", "nnc"))

    assert unknown.status_code == 404
    assert disabled.status_code == 403
    assert _stored(ingest) == (0, 0, 0)


def test_a_refusal_by_the_ingest_service_keeps_its_status_and_field(ingest: Ingest) -> None:
    foreign = raised_event("nnc", "nhft")  # this connector belongs to nhft, not nnc

    response = ingest.post(foreign)

    assert response.status_code == 403
    assert response.json()["field"] == "[0].data.raised_by.agency_id"
    assert _stored(ingest) == (0, 0, 0)
    assert ingest.pokes == []


def test_the_store_being_down_answers_503_with_retry_after(tmp_path: Path) -> None:
    (tmp_path / "unopenable").mkdir()  # a directory where the database file should be
    hub = make_hub(f"sqlite:///{tmp_path}/unopenable", create_tables=False)
    try:
        with serve(hub) as api:
            response = post_signed(api, "con_any", "whsec_" + "A" * 44, raised_event("a", "b"))
    finally:
        hub.close()

    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"] == "application/problem+json"
