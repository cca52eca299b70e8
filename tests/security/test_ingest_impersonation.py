"""Acting for others at ingest: correctly signed events that claim what the sender is not.

A connector may only send its own agency's actions, on escalations its agency is party to, in
partnerships its agency belongs to, under a source of its own and with agency action types.
Each refusal stores nothing (the whole batch), and a refused reach into someone else's
escalation leaves an ``access_denied`` audit entry.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.security.conftest import Attacks
from tests.security.world import (
    FOREIGN,
    FOREIGN_OFFICE,
    OUTSIDER,
    World,
    actor,
    discussion,
    event,
    raised_data,
)

HUB_FACTS = (
    "stage_changed",
    "deadline_approaching",
    "deadline_breached",
    "partnership_notified",
    "rejected",
)


def _refused(answer: httpx.Response, status: int, field: str) -> bool:
    """A problem with this status whose field (or one of whose errors) is ``field``."""
    if answer.status_code != status or "problem+json" not in answer.headers["content-type"]:
        return False
    problem = answer.json()
    fields = {problem.get("field"), *(e.get("field") for e in problem.get("errors") or [])}
    return any(f is not None and f.startswith(field) for f in fields)


def _try(
    world: World, attacks: Attacks, name: str, cases: list[tuple[str, Any, int, str]]
) -> list[str]:
    """Send each (sender, payload, expected status, field); record; the ones not refused."""
    before = world.stored_events()
    missed = [
        f"{sender}: {payload if isinstance(payload, str) else ''}"
        for sender, payload, status, field in cases
        if not _refused(world.post_events(world.members[sender], payload), status, field)
    ]
    attacks.record("impersonation", name, tried=len(cases), refused=len(cases) - len(missed))
    assert world.stored_events() == before, "a refused request stored events"
    return missed


def test_a_connector_cannot_act_for_another_agency(world: World, attacks: Attacks) -> None:
    esc = world.escalation_id
    as_nhft = event("acknowledged", {"by": actor("nhft")}, subject=esc)
    raised_as_nhft = event("raised", {**raised_data("nct-csc"), "raised_by": actor("nhft")})
    own = event("acknowledged", {"by": actor("nct-csc")}, subject=esc)
    cases = [
        ("nct-csc", as_nhft, 403, "[0].data.by.agency_id"),
        ("nct-csc", raised_as_nhft, 403, "[0].data.raised_by.agency_id"),
        ("nct-csc", [own, discussion("nhft", esc)], 403, "[1].data.by.agency_id"),
        ("nn-school", discussion("nhants-police", esc), 403, "[0].data.by.agency_id"),
    ]
    assert _try(world, attacks, "acting as another agency (data.by.agency_id)", cases) == []


def test_an_agency_cannot_act_on_an_escalation_it_is_not_party_to(
    world: World, attacks: Attacks
) -> None:
    esc = world.escalation_id
    cases = [
        (OUTSIDER, discussion(OUTSIDER, esc), 404, "[0].subject"),
        (FOREIGN, discussion(FOREIGN, esc), 404, "[0].subject"),
        (FOREIGN_OFFICE, discussion(FOREIGN_OFFICE, esc), 404, "[0].subject"),
        (OUTSIDER, discussion(OUTSIDER, str(uuid.uuid4())), 404, "[0].subject"),
        (OUTSIDER, discussion(OUTSIDER, "../escalations/*"), 404, "[0].subject"),
    ]
    actors = [OUTSIDER, f"agency:{OUTSIDER}", FOREIGN, f"agency:{FOREIGN}"]
    before = world.audit_count("access_denied", actors)
    assert _try(world, attacks, "acting on an escalation it is no party to", cases) == []
    audited = world.audit_count("access_denied", actors) - before
    attacks.record(
        "impersonation", "non-party reach audited as access_denied", tried=4, refused=audited
    )
    assert audited >= 4


def test_an_agency_cannot_raise_in_a_partnership_it_is_not_a_member_of(
    world: World, attacks: Attacks
) -> None:
    cases = [
        (
            FOREIGN,
            event("raised", raised_data(FOREIGN, parties=(FOREIGN, "nhft"))),
            403,
            "[0].data.partnership",
        ),
        (
            OUTSIDER,
            event(
                "raised",
                raised_data(OUTSIDER, parties=(OUTSIDER, FOREIGN), partnership="buckinghamshire"),
            ),
            403,
            "[0].data.partnership",
        ),
    ]
    assert _try(world, attacks, "raising in another partnership", cases) == []


def test_hub_sources_and_hub_fact_types_cannot_be_sent_by_an_agency(
    world: World, attacks: Attacks
) -> None:
    esc = world.escalation_id
    forged = []
    for source in (
        "urn:escalation-hub:router",
        "urn:escalation-hub:scheduler",
        "urn:escalation-hub:",
    ):
        forged.append(("nhft", {**discussion("nhft", esc), "source": source}, 422, "[0].source"))
    assert _try(world, attacks, "forging a hub source (urn:escalation-hub:...)", forged) == []
    facts = [
        ("nhft", event(kind, {"escalation_id": esc, "stage": 5}, subject=esc), 422, "[0]")
        for kind in HUB_FACTS
    ]
    assert _try(world, attacks, "hub fact types sent by an agency", facts) == []


def test_an_agency_cannot_reuse_another_agencys_event_source_and_id(
    world: World, attacks: Attacks
) -> None:
    original = discussion("nhft", world.escalation_id)
    assert world.post_events(world.members["nhft"], original).status_code == 202
    shadow = {
        **discussion("nct-csc", world.escalation_id),
        "id": original["id"],
        "source": original["source"],
    }
    cases = [("nct-csc", shadow, 409, "[0].id")]
    assert _try(world, attacks, "reusing another agency's event source and id", cases) == []
