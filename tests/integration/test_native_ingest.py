"""Native documents through the real gateway: translated by their connector kind, stored once,
matched to the escalation by the sender's own case reference, refused in the sender's own terms.

Real HTTP (uvicorn on 127.0.0.1) on a real SQLite file and on the real PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from connectors.base import ConnectorConfig, ConnectorMeta, InboundContext
from connectors.conformance_checks import update_for
from connectors.generic import GenericConnector
from connectors.registry import Registry, default_registry
from connectors.social_care import SocialCareConnector
from connectors.social_care_native import SocialCareConfig
from gateway.api import create_app
from gateway.bootstrap import Hub
from gateway.services.rendering import RenderError, render
from gateway.services.routing import handle_decide
from gateway.store.models import Connector, Delivery, InboundEvent, Party
from security.webhooks import sign
from tests.integration.test_api_helpers import (
    ADMIN,
    PUBLIC_JWK,
    LiveServer,
    agency_headers,
    make_hub,
    register_agency,
)

SAMPLES = Path(__file__).parents[2] / "connectors" / "samples" / "social-care"
CONFIG = json.loads((SAMPLES / "config.json").read_text())
CSC, HEALTH, POLICE = "nct-csc", "nhft", "nhants-police"


class VaultConfig(ConnectorConfig):
    api_token: SecretStr


class VaultConnector(GenericConnector):
    """A connector whose config holds a secret (to show how it is stored)."""

    meta: ClassVar[ConnectorMeta] = GenericConnector.meta.model_copy(update={"kind": "vault"})
    config_model: ClassVar[type[ConnectorConfig]] = VaultConfig


@dataclass
class Gateway:
    hub: Hub
    api: httpx.Client
    tokens: dict[str, str]

    def register(self, agency_id: str, kind: str, config: dict[str, Any]) -> httpx.Response:
        body = {
            "kind": kind,
            "callback_url": "http://127.0.0.1:9/hook",
            "public_jwk": PUBLIC_JWK,
            "config": config,
        }
        headers = agency_headers(self.tokens[agency_id])
        return self.api.post(f"/v1/agencies/{agency_id}/connectors", json=body, headers=headers)

    def connector(self, agency_id: str, kind: str, config: dict[str, Any]) -> tuple[str, str]:
        created = self.register(agency_id, kind, config)
        assert created.status_code == 201, created.text
        return created.json()["id"], created.json()["signing_secret"]

    def post(
        self, connector: tuple[str, str], body: bytes, content_type: str, webhook_id: str = ""
    ) -> httpx.Response:
        connector_id, secret = connector
        headers = sign([secret], webhook_id or uuid.uuid4().hex, datetime.now(UTC), body)
        headers["content-type"] = content_type
        return self.api.post(f"/v1/connectors/{connector_id}/events", content=body, headers=headers)

    def count(self, model: type[Any]) -> int:
        with self.hub.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def _database(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[str]:
    """The SQLite file, or a fresh schema of the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    pg_url = request.getfixturevalue("pg_url")
    schema = f"n_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield str(make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"}))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _gateway(url: str) -> Iterator[Gateway]:
    """The gateway with the installed connectors and a 'vault' one; three agencies."""
    hub = make_hub(url)
    app = create_app(hub)
    installed = {c.meta.kind: c for c in default_registry()}
    app.state.connectors = Registry({**installed, "vault": VaultConnector()})
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url) as api:
            tokens = {
                CSC: register_agency(api, CSC, kind="social_care"),
                HEALTH: register_agency(api, HEALTH),
                POLICE: register_agency(api, POLICE, kind="police"),
            }
            yield Gateway(hub, api, tokens)
    finally:
        hub.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[Gateway]:
    """The gateway on each real store (for what the store's queries decide)."""
    with _database(request, sqlite_url) as url, _gateway(url) as gateway:
        yield gateway


@pytest.fixture
def gateway(sqlite_url: str) -> Iterator[Gateway]:
    """The gateway on a SQLite file (for what the API alone decides)."""
    with _gateway(sqlite_url) as running:
        yield running


def _sample(name: str, **changes: Any) -> bytes:
    document = {**json.loads((SAMPLES / name).read_text()), **changes}
    return json.dumps(document).encode()


def _raise(gateway: Gateway) -> tuple[tuple[str, str], str]:
    csc = gateway.connector(CSC, "social-care", CONFIG)
    answer = gateway.post(csc, _sample("raised.json"), "application/json; charset=utf-8")
    assert answer.status_code == 202, answer.text
    return csc, answer.json()["accepted"][0]["escalation_id"]


def test_a_native_raise_is_stored_with_every_partys_own_reference(stores: Gateway) -> None:
    _, escalation_id = _raise(stores)

    with stores.hub.sessions() as session:
        query = select(Party.agency_id, Party.case_reference).where(
            Party.escalation_id == escalation_id
        )
        references = dict(session.execute(query).all())
    assert references == {CSC: "CS-004512", HEALTH: "NHFT-RIO-77812", POLICE: "NP-PPN-2026-0457"}


def test_the_same_native_document_again_is_the_same_event_and_changes_nothing(
    stores: Gateway,
) -> None:
    csc, escalation_id = _raise(stores)

    again = stores.post(csc, _sample("raised.json"), "application/json")

    assert again.status_code == 202
    assert again.json()["accepted"][0]["duplicate"] is True
    assert again.json()["accepted"][0]["escalation_id"] == escalation_id
    assert stores.count(InboundEvent) == 1


def test_an_action_without_the_hubs_id_finds_the_escalation_by_the_senders_reference(
    stores: Gateway,
) -> None:
    csc, escalation_id = _raise(stores)
    health = stores.connector(HEALTH, "generic", {})
    ack = {
        "specversion": "1.0",
        "id": "rio-ack-1",
        "source": "urn:nhft:rio",
        "type": "uk.escalation-hub.v1.acknowledged",
        "time": "2026-03-02T10:00:00Z",
        "agencyref": "NHFT-RIO-77812",
        "data": {"by": {"agency_id": HEALTH, "name": "Jo Nurse", "role": "practitioner"}},
    }

    by_health = stores.post(health, json.dumps(ack).encode(), "application/json")
    by_csc = stores.post(csc, _sample("escalation.json"), "application/json")

    assert by_health.status_code == by_csc.status_code == 202
    assert [by_health.json()["accepted"][0][k] for k in ("escalation_id", "sequence")] == [
        escalation_id,
        2,
    ]
    assert by_csc.json()["accepted"][0]["sequence"] == 3


def test_an_unknown_reference_is_not_found_naming_agencyref_and_stores_nothing(
    stores: Gateway,
) -> None:
    csc, _ = _raise(stores)

    answer = stores.post(csc, _sample("acknowledged.json", caseId="CS-999999"), "application/json")

    assert answer.status_code == 404
    assert answer.json()["field"] == "[0].agencyref"
    assert stores.count(InboundEvent) == 1


def test_two_open_escalations_under_one_reference_need_the_hubs_id(stores: Gateway) -> None:
    csc, _ = _raise(stores)
    second = _sample("raised.json", eventId="WFE-20260302-000202")
    assert stores.post(csc, second, "application/json").status_code == 202

    answer = stores.post(csc, _sample("acknowledged.json"), "application/json")

    assert answer.status_code == 409
    assert answer.json()["field"] == "[0].agencyref"


def test_an_untranslatable_document_is_a_422_in_the_systems_own_terms_storing_nothing(
    gateway: Gateway,
) -> None:
    csc = gateway.connector(CSC, "social-care", CONFIG)
    body = (SAMPLES / "invalid" / "unknown-step-type.json").read_bytes()

    answer = gateway.post(csc, body, "application/json")

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    [error] = answer.json()["errors"]
    assert error["field"] == "step.stepType"
    assert "PROFESSIONAL_DISAGREEMENT_ESCALATION" in error["expected"]
    for value in ("CHILD_AND_FAMILY_ASSESSMENT", "Sam Example", "Alex Morgan", "CS-004512"):
        assert value not in answer.text
    assert gateway.count(InboundEvent) == 0


def test_a_malformed_document_is_a_400_with_its_position(gateway: Gateway) -> None:
    csc = gateway.connector(CSC, "social-care", CONFIG)

    answer = gateway.post(csc, b'{"eventId": "x",\n "caseId": }', "application/json")

    assert answer.status_code == 400
    assert answer.json()["position"] == {"line": 2, "column": 12, "offset": 28}
    assert answer.json()["connector_kind"] == "social-care"


def test_a_media_type_the_kind_does_not_read_is_415_listing_those_it_does(
    gateway: Gateway,
) -> None:
    csc = gateway.connector(CSC, "social-care", CONFIG)

    answer = gateway.post(csc, b"<WorkflowEvent/>", "application/xml")

    assert answer.status_code == 415
    assert answer.json()["accepted"] == ["application/json"]
    assert answer.headers["accept-post"] == "application/json"
    assert gateway.count(InboundEvent) == 0


def test_registering_an_unknown_kind_is_refused_listing_the_known_kinds(gateway: Gateway) -> None:
    answer = gateway.register(CSC, "carrier-pigeon", {})

    assert answer.status_code == 422
    assert answer.json()["field"] == "kind"
    assert {"generic", "social-care", "fhir-r4", "police-xml"} <= set(answer.json()["known_kinds"])


def test_a_config_that_does_not_fit_the_kind_is_refused_naming_each_field(
    gateway: Gateway,
) -> None:
    answer = gateway.register(CSC, "social-care", {"organisations": ["RP1"], "fax": "0160"})

    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"config.organisations", "config.fax"}
    assert "0160" not in answer.text


def test_a_secret_in_a_config_is_sealed_apart_and_shown_masked(gateway: Gateway) -> None:
    created = gateway.register(HEALTH, "vault", {"api_token": "tok-Sentinel-42"})

    assert created.status_code == 201, created.text
    assert created.json()["config"]["api_token"] == "**********"
    with gateway.hub.sessions() as session:
        row = session.get(Connector, created.json()["id"])
        assert row is not None
        assert "Sentinel" not in json.dumps(row.config)
        assert row.config_secrets_sealed is not None
        assert b"Sentinel" not in row.config_secrets_sealed


def test_the_installed_kinds_are_listed_with_their_formats_and_config_schema(
    gateway: Gateway,
) -> None:
    answer = gateway.api.get("/v1/connector-kinds", headers=ADMIN)

    kinds = {k["kind"]: k for k in answer.json()}
    assert kinds["social-care"]["reads"] == ["application/json"]
    assert "organisations" in kinds["social-care"]["config_schema"]["properties"]
    assert kinds["fhir-r4"]["writes"] == ["application/fhir+json"]


def test_delivery_renders_through_the_recipients_connector_kind() -> None:
    context = InboundContext(CSC, "con_1", datetime.now(UTC), SocialCareConfig(**CONFIG))
    [raised] = SocialCareConnector().translate_inbound(
        _sample("raised.json"), "application/json", context=context
    )
    document = update_for(raised, sequence=1, agency_id=CSC).model_dump(mode="json")

    body, media_type = render("social-care", document)
    generic, common = render("generic", document)

    assert media_type == "application/json"
    assert json.loads(body)["eventType"] == "PartnerStageUpdate"
    assert json.loads(generic)["recipient_case_reference"] == "CS-004512"
    assert common == "application/json"
    with pytest.raises(RenderError, match="no connector of kind 'fax'"):
        render("fax", document)
    with pytest.raises(RenderError, match="not a valid stage update"):
        render("social-care", {**document, "stage": "two"})


def _decide(gateway: Gateway, escalation_id: str) -> None:
    handle_decide(gateway.hub, f"test:{uuid.uuid4().hex}", {"escalation_id": escalation_id})


def _references_sent_to(gateway: Gateway, connector_id: str) -> list[str | None]:
    with gateway.hub.sessions() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.connector_id == connector_id).order_by(Delivery.id)
        ).all()
        documents = [
            gateway.hub.sealer.unseal(r.document_sealed, context=f"delivery:{r.id}") for r in rows
        ]
    return [d.get("recipient_case_reference") for d in sorted(documents, key=_sequence)]


def _sequence(document: dict[str, Any]) -> int:
    return int(document.get("sequence", 0))


def test_a_reference_learnt_when_a_party_first_acts_reaches_its_later_updates(
    gateway: Gateway,
) -> None:
    csc = gateway.connector(CSC, "social-care", CONFIG)
    health = gateway.connector(HEALTH, "generic", {})
    partners = [{"code": "RP1", "agencyType": "HEALTH"}]  # the raise does not know health's ref
    raised = gateway.post(csc, _sample("raised.json", partnerAgencies=partners), "application/json")
    escalation_id = raised.json()["accepted"][0]["escalation_id"]
    _decide(gateway, escalation_id)
    ack = {
        "specversion": "1.0",
        "id": "late-ack-1",
        "source": "urn:nhft:rio",
        "type": "uk.escalation-hub.v1.acknowledged",
        "time": "2026-03-02T10:00:00Z",
        "subject": escalation_id,
        "agencyref": "NHFT-LATE-1",
        "data": {"by": {"agency_id": HEALTH, "name": "Jo Nurse", "role": "practitioner"}},
    }
    assert gateway.post(health, json.dumps(ack).encode(), "application/json").status_code == 202
    _decide(gateway, escalation_id)
    assert gateway.post(csc, _sample("escalation.json"), "application/json").status_code == 202
    _decide(gateway, escalation_id)

    references = _references_sent_to(gateway, health[0])

    assert references[0] is None  # the raise did not know it
    assert references[-1] == "NHFT-LATE-1"
