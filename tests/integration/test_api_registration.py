"""Registering agencies and connectors over real HTTP, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from gateway.bootstrap import Hub
from gateway.store.models import Agency, AuditEntry, Connector
from tests.integration.test_api_helpers import (
    ADMIN,
    PUBLIC_JWK,
    agency_headers,
    make_hub,
    post_signed,
    register_agency,
    register_connector,
    serve,
)


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    hub = make_hub(sqlite_url)
    yield hub
    hub.close()


@pytest.fixture
def api(hub: Hub) -> Iterator[httpx.Client]:
    with serve(hub) as client:
        yield client


def _secrets(hub: Hub, connector_id: str) -> list[str]:
    with hub.sessions() as session:
        row = session.get(Connector, connector_id)
        assert row is not None
        found: list[str] = hub.sealer.unseal(row.secrets_sealed, context=f"connector:{row.id}")
        return found


def test_administrator_registers_an_agency_whose_credential_is_shown_once(
    api: httpx.Client, hub: Hub
) -> None:
    body = {"id": "nhft", "name": "NHFT", "kind": "health", "partnerships": ["northamptonshire"]}
    created = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert created.status_code == 201
    token = created.json()["credential"]
    assert token.startswith("ehk_")
    again = api.get("/v1/agencies/nhft", headers=ADMIN)
    assert again.status_code == 200
    assert "credential" not in again.json()
    assert token not in again.text
    with hub.sessions() as session:
        row = session.get(Agency, "nhft")
        assert row is not None
        assert token not in (row.credential_hash, row.credential_id)
    assert api.get("/v1/agencies/nhft", headers=agency_headers(token)).status_code == 200


def test_registering_an_existing_agency_id_answers_409(api: httpx.Client) -> None:
    register_agency(api, "nhft")
    body = {"id": "nhft", "name": "Again", "kind": "police", "partnerships": ["northamptonshire"]}

    response = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "id"


def test_an_unknown_partnership_is_refused_naming_the_field_and_the_known_ids(
    api: httpx.Client, hub: Hub
) -> None:
    body = {
        "id": "nhft",
        "name": "N",
        "kind": "health",
        "partnerships": ["northamptonshire", "atlantis"],
    }

    response = api.post("/v1/agencies", json=body, headers=ADMIN)

    assert response.status_code == 422
    problem = response.json()
    assert problem["field"] == "partnerships[1]"
    assert "northamptonshire" in problem["known"]
    assert "gloucestershire" in problem["detail"]
    with hub.sessions() as session:
        assert session.get(Agency, "nhft") is None


def test_only_the_administrator_registers_agencies(api: httpx.Client) -> None:
    token = register_agency(api, "nhft")
    body = {"id": "other", "name": "O", "kind": "police", "partnerships": ["northamptonshire"]}

    as_agency = api.post("/v1/agencies", json=body, headers=agency_headers(token))
    anonymous = api.post("/v1/agencies", json=body)
    forged = api.post("/v1/agencies", json=body, headers=agency_headers(token[:-4] + "0000"))

    assert as_agency.status_code == 403
    for refused in (anonymous, forged):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["content-type"] == "application/problem+json"
    assert token[-20:] not in forged.text


def test_an_agency_cannot_read_another_agency(api: httpx.Client) -> None:
    token = register_agency(api, "nhft")
    register_agency(api, "police", kind="police")

    response = api.get("/v1/agencies/police", headers=agency_headers(token))

    assert response.status_code == 404


def test_an_agency_registers_a_connector_whose_secret_is_shown_once_and_sealed(
    api: httpx.Client, hub: Hub
) -> None:
    token = register_agency(api, "nhft")

    connector_id, secret = register_connector(api, "nhft", token)

    assert secret.startswith("whsec_")
    read = api.get(f"/v1/connectors/{connector_id}", headers=agency_headers(token))
    assert read.status_code == 200
    assert "signing_secret" not in read.json()
    assert secret not in read.text
    with hub.sessions() as session:
        row = session.get(Connector, connector_id)
        assert row is not None
        assert secret.encode() not in row.secrets_sealed
        audited = session.scalars(select(AuditEntry.action)).all()
    assert _secrets(hub, connector_id) == [secret]
    assert {"agency_registered", "connector_registered"} <= set(audited)


def test_another_agency_can_neither_register_nor_read_a_connector_for_an_agency(
    api: httpx.Client,
) -> None:
    owner = register_agency(api, "nhft")
    stranger = register_agency(api, "police", kind="police")
    connector_id, _ = register_connector(api, "nhft", owner)
    body = {"callback_url": "http://127.0.0.1:9/x", "public_jwk": PUBLIC_JWK}

    registering = api.post(
        "/v1/agencies/nhft/connectors", json=body, headers=agency_headers(stranger)
    )
    reading = api.get(f"/v1/connectors/{connector_id}", headers=agency_headers(stranger))

    assert registering.status_code == 404
    assert reading.status_code == 404


def test_a_public_jwk_with_private_members_is_refused_naming_public_jwk(api: httpx.Client) -> None:
    token = register_agency(api, "nhft")
    leaked = {**PUBLIC_JWK, "d": "AAAA"}

    response = api.post(
        "/v1/agencies/nhft/connectors",
        json={"callback_url": "http://127.0.0.1:9/x", "public_jwk": leaked},
        headers=agency_headers(token),
    )

    assert response.status_code == 422
    assert response.json()["field"] == "public_jwk"
    assert "private" in response.json()["detail"]


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "https://10.0.0.1/"]
)
def test_callbacks_to_private_or_metadata_addresses_are_refused(
    api: httpx.Client, url: str
) -> None:
    token = register_agency(api, "nhft")

    response = api.post(
        "/v1/agencies/nhft/connectors",
        json={"callback_url": url, "public_jwk": PUBLIC_JWK},
        headers=agency_headers(token),
    )

    assert response.status_code == 422
    assert response.json()["field"] == "callback_url"


def test_loopback_callbacks_are_refused_unless_allowed(tmp_path: object) -> None:
    hub = make_hub(f"sqlite:///{tmp_path}/strict.sqlite3", allow_loopback_callbacks=False)
    try:
        with serve(hub) as api:
            token = register_agency(api, "nhft")
            response = api.post(
                "/v1/agencies/nhft/connectors",
                json={"callback_url": "https://127.0.0.1:8443/hook", "public_jwk": PUBLIC_JWK},
                headers=agency_headers(token),
            )
    finally:
        hub.close()

    assert response.status_code == 422
    assert "loopback" in response.json()["detail"]


def test_rotating_a_secret_keeps_exactly_the_previous_one_valid(
    api: httpx.Client, hub: Hub
) -> None:
    token = register_agency(api, "nhft")
    connector_id, first = register_connector(api, "nhft", token)
    path = f"/v1/connectors/{connector_id}/rotate-secret"

    second = api.post(path, headers=agency_headers(token)).json()["signing_secret"]
    old_still_signs = post_signed(api, connector_id, first, {}, webhook_id="wh-a")
    third = api.post(path, headers=agency_headers(token)).json()["signing_secret"]
    oldest_refused = post_signed(api, connector_id, first, {}, webhook_id="wh-b")

    assert old_still_signs.status_code == 422  # past the signature check, refused as an event
    assert oldest_refused.status_code == 401
    assert _secrets(hub, connector_id) == [third, second]


def test_only_the_owning_agency_rotates_a_secret(api: httpx.Client) -> None:
    owner = register_agency(api, "nhft")
    stranger = register_agency(api, "police", kind="police")
    connector_id, _ = register_connector(api, "nhft", owner)
    path = f"/v1/connectors/{connector_id}/rotate-secret"

    assert api.post(path, headers=agency_headers(stranger)).status_code == 404
    assert api.post(path, headers=ADMIN).status_code == 403


def test_the_openapi_document_declares_what_this_hub_accepts(api: httpx.Client) -> None:
    document = api.get("/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    events = document["paths"]["/v1/connectors/{connector_id}/events"]["post"]

    partnerships = schemas["AgencyIn"]["properties"]["partnerships"]["items"]["enum"]
    connector = schemas["ConnectorIn"]
    kinds = connector["properties"]["kind"]["enum"]
    media_types = events["requestBody"]["content"]

    assert "northamptonshire" in partnerships
    assert {"generic", "social-care", "fhir-r4", "police-xml"} <= set(kinds)
    assert {form["title"] for form in connector["oneOf"]} == set(kinds)
    assert connector["properties"]["public_jwk"]["$ref"] == "#/components/schemas/PublicJwk"
    assert connector["properties"]["callback_url"]["pattern"].startswith("^(?:https://")
    assert "oneOf" in media_types["application/json"]["schema"]
    assert {"application/fhir+json", "application/xml"} <= set(media_types)
    assert "429" in events["responses"]


def test_a_body_that_is_not_utf8_is_a_422_problem_naming_the_body(api: httpx.Client) -> None:
    response = api.post(
        "/v1/agencies",
        content=b"}\x80\xcdS",
        headers={**ADMIN, "content-type": "application/json"},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "(body)"


def test_denied_registration_and_reads_of_another_agencys_objects_are_audited(
    api: httpx.Client, hub: Hub
) -> None:
    owner = register_agency(api, "nhft")
    stranger = register_agency(api, "police", kind="police")
    connector_id, _ = register_connector(api, "nhft", owner)
    body = {"callback_url": "http://127.0.0.1:9/x", "public_jwk": PUBLIC_JWK}
    headers = agency_headers(stranger)

    answers = [
        api.get("/v1/agencies/nhft", headers=headers),
        api.post("/v1/agencies/nhft/connectors", json=body, headers=headers),
        api.get(f"/v1/connectors/{connector_id}", headers=headers),
        api.post(f"/v1/connectors/{connector_id}/rotate-secret", headers=headers),
        api.post(f"/v1/connectors/{connector_id}/enable", headers=headers),
    ]

    assert [a.status_code for a in answers] == [404] * 5
    assert all(a.json()["detail"].startswith("no such ") for a in answers)
    with hub.sessions() as session:
        denied = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "access_denied")
        ).all()
    assert denied == ["agency:police"] * 5
