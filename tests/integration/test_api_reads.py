"""Scoped, audited reads: parties see their escalations, a business office its partnership."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from gateway.bootstrap import Hub
from gateway.services.routing import handle_decide
from gateway.store.models import AuditEntry, DeadlineRow, EscalationRow
from tests.integration.test_api_helpers import (
    ADMIN,
    CHILD_NAME,
    NHS_NUMBER,
    agency_headers,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
    serve,
)


@dataclass
class World:
    hub: Hub
    api: httpx.Client
    tokens: dict[str, str]
    escalation_id: str

    def get(self, path: str, who: str) -> httpx.Response:
        headers = ADMIN if who == "admin" else agency_headers(self.tokens[who])
        return self.api.get(path, headers=headers)

    def audit(self, action: str) -> list[AuditEntry]:
        with self.hub.sessions() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _raise(world: World, connector: tuple[str, str], event_id: str) -> str:
    response = post_signed(
        world.api, *connector, raised_event("nhft", "nnc", event_id=event_id), webhook_id=event_id
    )
    assert response.status_code == 202, response.text
    escalation_id: str = response.json()["accepted"][0]["escalation_id"]
    handle_decide(world.hub, f"decide:{escalation_id}:1", {"escalation_id": escalation_id})
    return escalation_id


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    hub = make_hub(sqlite_url)
    try:
        with serve(hub) as api:
            tokens = {
                "nhft": register_agency(api, "nhft"),
                "nnc": register_agency(api, "nnc", kind="social_care"),
                "police": register_agency(api, "police", kind="police"),
                "office": register_agency(api, "office", kind="business_office"),
                "bucks-office": register_agency(
                    api, "bucks-office", kind="business_office", partnerships=("buckinghamshire",)
                ),
            }
            connector = register_connector(api, "nhft", tokens["nhft"])
            register_connector(api, "nnc", tokens["nnc"])
            world = World(hub, api, tokens, "")
            world.escalation_id = _raise(world, connector, "evt-1")
            yield world
    finally:
        hub.close()


def test_a_party_reads_the_full_state_with_its_own_case_reference(world: World) -> None:
    response = world.get(f"/v1/escalations/{world.escalation_id}", "nhft")

    assert response.status_code == 200
    view = response.json()
    assert view["view"] == "party"
    assert view["case_reference"] == "REF-nhft"
    assert view["state"]["child"]["identifiers"]["nhs_number"] == NHS_NUMBER
    assert view["state"]["child"]["pseudonyms"]
    [read] = world.audit("read")
    assert (read.actor, read.escalation_id) == ("agency:nhft", world.escalation_id)


def test_another_agency_gets_404_and_the_attempt_is_audited(world: World) -> None:
    response = world.get(f"/v1/escalations/{world.escalation_id}", "police")
    history = world.get(f"/v1/escalations/{world.escalation_id}/history", "police")
    unknown = world.get("/v1/escalations/no-such-id", "police")

    assert response.status_code == history.status_code == unknown.status_code == 404
    assert response.json()["title"] == unknown.json()["title"]  # "not yours" looks like "none"
    assert NHS_NUMBER not in response.text
    denied = world.audit("access_denied")
    assert [(d.actor, d.escalation_id) for d in denied] == [
        ("agency:police", world.escalation_id),
        ("agency:police", world.escalation_id),
    ]
    assert world.audit("read") == []


def test_the_business_office_sees_its_partnership_without_child_identifiers(world: World) -> None:
    response = world.get(f"/v1/escalations/{world.escalation_id}", "office")
    other_office = world.get(f"/v1/escalations/{world.escalation_id}", "bucks-office")

    assert response.status_code == 200
    view = response.json()
    assert view["view"] == "oversight"
    assert view["state"]["child"]["identifiers"] is None
    assert view["state"]["child"]["pseudonyms"]
    assert NHS_NUMBER not in response.text
    assert NHS_NUMBER.replace(" ", "") not in response.text
    assert CHILD_NAME not in response.text
    assert other_office.status_code == 404


def test_listing_shows_each_caller_only_what_it_may_see(world: World) -> None:
    def ids(who: str) -> list[tuple[str, str | None]]:
        response = world.get("/v1/escalations", who)
        assert response.status_code == 200
        assert "state" not in response.text
        return [(i["id"], i["case_reference"]) for i in response.json()["items"]]

    assert ids("nhft") == [(world.escalation_id, "REF-nhft")]
    assert ids("nnc") == [(world.escalation_id, "SC-77")]
    assert ids("office") == [(world.escalation_id, None)]
    assert ids("admin") == [(world.escalation_id, None)]
    assert ids("police") == []
    assert ids("bucks-office") == []


def test_listing_filters_and_pages_with_an_opaque_cursor(world: World) -> None:
    connector = register_connector(world.api, "nhft", world.tokens["nhft"])
    others = {_raise(world, connector, f"evt-{n}") for n in (2, 3)}
    everyone = others | {world.escalation_id}

    first = world.get("/v1/escalations?limit=2", "nhft").json()
    second = world.get(f"/v1/escalations?limit=2&cursor={first['next_cursor']}", "nhft").json()
    stage_99 = world.get("/v1/escalations?stage=99", "nhft").json()
    bucks = world.get("/v1/escalations?partnership=buckinghamshire", "admin").json()
    bad = world.get("/v1/escalations?cursor=%25%25%25", "nhft")

    paged = [i["id"] for i in first["items"] + second["items"]]
    assert sorted(paged) == paged
    assert set(paged) == everyone
    assert second["next_cursor"] is None
    assert stage_99["items"] == bucks["items"] == []
    assert bad.status_code == 422
    assert bad.json()["field"] == "cursor"


def test_history_lists_events_in_order_with_the_rule_and_the_deliveries(world: World) -> None:
    response = world.get(f"/v1/escalations/{world.escalation_id}/history", "nnc")

    assert response.status_code == 200
    history = response.json()
    [event] = history["events"]
    assert event["seq"] == 1
    assert event["type"] == "uk.escalation-hub.v1.raised"
    assert event["rule"]
    assert event["decided_at"] is not None
    recipients = {d["recipient_agency_id"] for d in history["deliveries"]}
    assert recipients == {"nhft", "nnc"}  # a stage update for each party's connector
    assert NHS_NUMBER not in response.text


def test_the_partnership_overview_counts_and_lists_overdue_deadlines(world: World) -> None:
    now = world.hub.clock()
    with world.hub.sessions() as session:
        for deadline_id, due, state in (
            ("late", now - timedelta(days=1), "breached"),
            ("finished", now - timedelta(days=2), "done"),
            ("later", now + timedelta(days=3), "pending"),
        ):
            session.add(
                DeadlineRow(
                    escalation_id=world.escalation_id,
                    deadline_id=deadline_id,
                    due=due,
                    notice_at=None,
                    state=state,
                    calendar_version="test",
                )
            )
        session.commit()

    response = world.get("/v1/partnerships/northamptonshire/overview", "office")

    assert response.status_code == 200
    overview = response.json()
    assert sum(overview["by_status"].values()) == 1
    assert sum(overview["by_stage"].values()) == 1
    assert [d["deadline_id"] for d in overview["overdue"]] == ["late"]
    assert NHS_NUMBER not in response.text


def test_the_overview_is_only_for_that_partnerships_office_or_the_administrator(
    world: World,
) -> None:
    path = "/v1/partnerships/northamptonshire/overview"

    assert world.get(path, "admin").status_code == 200
    assert world.get(path, "nhft").status_code == 404
    assert world.get(path, "bucks-office").status_code == 404
    assert [d.actor for d in world.audit("access_denied")] == ["agency:nhft", "agency:bucks-office"]


def test_a_state_that_cannot_be_unsealed_is_a_500_problem_logged_without_its_message(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with world.hub.sessions() as session:
        row = session.get(EscalationRow, world.escalation_id)
        assert row is not None
        row.state_sealed = world.hub.sealer.seal({}, context="escalation:another-one")
        session.commit()

    response = world.get(f"/v1/escalations/{world.escalation_id}", "nhft")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal server error"
    assert "Decryption" not in response.text
    [logged] = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert logged.error == "DecryptionError"  # type: ignore[attr-defined]
    assert "read_escalation" in logged.stack  # type: ignore[attr-defined]
    assert not any("failed authentication" in r.getMessage() or r.exc_info for r in caplog.records)
