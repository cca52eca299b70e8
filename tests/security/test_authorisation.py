"""Authorisation on every route: who may not, may not; who may, may (and sees only their share).

The matrix (``matrix.py``) sends every route of the live OpenAPI document once per attacker;
the tests below judge the answers: anonymous callers get 401, agencies without a stake get 403
or 404 (a list may answer 200 without the object), agencies get 403 on administrator routes,
nothing answers 2xx to an attacker or 5xx to anyone, and denied object access is audited.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.conftest import Attacks
from tests.security.matrix import (
    ADMIN_ROUTES,
    CATALOGUES,
    COLLECTIONS,
    INSIDERS,
    PUBLIC_ROUTES,
    SIGNED_ROUTES,
    TENANTS,
    Attempt,
    attackers,
    routes,
    sweep,
)
from tests.security.world import CHILD, OFFICE, World

ANONYMOUS = ("no credential", "malformed token", "unknown credential")
PROBLEM_JSON = "application/problem+json"
#: Routes whose denials once left no ``access_denied`` entry: checked by name below.
ONCE_UNAUDITED = frozenset(
    {
        ("get", "/v1/agencies/{agency_id}"),
        ("post", "/v1/agencies/{agency_id}/connectors"),
        ("get", "/v1/connectors/{connector_id}"),
        ("post", "/v1/connectors/{connector_id}/rotate-secret"),
        ("post", "/v1/connectors/{connector_id}/enable"),
        ("post", "/v1/dead-letters/{delivery_id}/replay"),
    }
)


@pytest.fixture(scope="module")
def attempts(world: World) -> list[Attempt]:
    """Every route once per attacker (run once for the module)."""
    return sweep(world, attackers(world))


def _refused(attempt: Attempt, allowed: set[int], world: World) -> bool:
    """Refused with a problem document, or (a list, a catalogue) answered without the object."""
    if attempt.status in allowed:
        return PROBLEM_JSON in attempt.content_type
    shared = attempt.route in COLLECTIONS | CATALOGUES and attempt.actor is not None
    return shared and attempt.status == 200 and world.escalation_id not in attempt.body


def _judge(
    attacks: Attacks, world: World, found: list[Attempt], allowed: set[int], what: str
) -> list[str]:
    wrong = [a for a in found if not _refused(a, allowed, world)]
    attacks.record("authorisation", what, tried=len(found), refused=len(found) - len(wrong))
    return [f"{a.attacker}: {a.route[0].upper()} {a.route[1]} -> {a.status}" for a in wrong]


def test_callers_without_a_valid_credential_get_401_on_every_route(
    attempts: list[Attempt], world: World, attacks: Attacks
) -> None:
    for name in ANONYMOUS:
        found = [a for a in attempts if a.attacker == name]
        assert len(found) == len(routes(world)) - len(PUBLIC_ROUTES)
        wrong = _judge(attacks, world, found, {401}, f"{name} on every route")
        assert wrong == []


def test_agencies_without_a_stake_get_403_or_404_and_never_the_object(
    attempts: list[Attempt], world: World, attacks: Attacks
) -> None:
    for name in TENANTS:
        found = [a for a in attempts if a.attacker == name and a.route not in SIGNED_ROUTES]
        wrong = _judge(attacks, world, found, {403, 404}, f"{name} on every object")
        assert wrong == []
        signed = [a for a in attempts if a.attacker == name and a.route in SIGNED_ROUTES]
        what = f"{name} signs for another agency's connector"
        assert _judge(attacks, world, signed, {401}, what) == []


def test_agencies_and_business_offices_get_403_on_administrator_routes(
    attempts: list[Attempt], world: World, attacks: Attacks
) -> None:
    found = [a for a in attempts if a.route in ADMIN_ROUTES and a.actor is not None]
    assert {a.attacker for a in found} == {*TENANTS, *INSIDERS}
    wrong = _judge(attacks, world, found, {403}, "agency credentials on administrator routes")
    assert wrong == []


def test_refusals_name_what_is_wrong_without_echoing_credentials(attempts: list[Attempt]) -> None:
    for attempt in attempts:
        if attempt.status in (401, 403, 404):
            problem = json.loads(attempt.body)
            assert problem["status"] == attempt.status
            assert problem["detail"]
            assert "ehk_" not in attempt.body
            assert "whsec_" not in attempt.body


def _audit_gaps(attempts: list[Attempt]) -> set[tuple[str, str]]:
    """Routes on which an agency was refused an object and no access_denied entry was made."""
    return {
        a.route
        for a in attempts
        if a.actor is not None
        and a.route not in SIGNED_ROUTES
        and "{" in a.route[1]
        and a.status in (403, 404)
        and a.audited < 1
    }


def test_denied_access_to_an_escalation_or_partnership_is_audited_as_access_denied(
    attempts: list[Attempt], attacks: Attacks
) -> None:
    denied = [a for a in attempts if a.actor is not None and "{" in a.route[1]]
    checked = [a for a in denied if a.route not in ONCE_UNAUDITED | SIGNED_ROUTES]
    audited = sum(1 for a in checked if a.audited >= 1)
    attacks.record(
        "authorisation", "denied object access is audited", tried=len(checked), refused=audited
    )
    assert _audit_gaps(attempts) == set()
    assert {a.route[1] for a in checked} >= {
        "/v1/escalations/{escalation_id}",
        "/v1/escalations/{escalation_id}/history",
        "/v1/partnerships/{partnership_id}/overview",
    }


def test_denied_access_to_agencies_connectors_and_dead_letters_is_audited_too(
    attempts: list[Attempt], attacks: Attacks
) -> None:
    found = [a for a in attempts if a.route in ONCE_UNAUDITED and a.actor is not None]
    audited = sum(1 for a in found if a.audited >= 1)
    attacks.record(
        "authorisation",
        "denied agency/connector/dead-letter access is audited",
        tried=len(found),
        refused=audited,
    )
    assert {a.route for a in found} == ONCE_UNAUDITED
    assert audited == len(found) > 0


def test_agencies_refused_an_administrator_route_are_audited(
    attempts: list[Attempt], attacks: Attacks
) -> None:
    found = [a for a in attempts if a.route in ADMIN_ROUTES and a.actor is not None]
    audited = sum(1 for a in found if a.status == 403 and a.audited >= 1)
    attacks.record(
        "authorisation",
        "agencies refused an administrator route are audited",
        tried=len(found),
        refused=audited,
    )
    assert audited == len(found) > 0


def _read(world: World, token: str, path: str) -> Any:
    answer = world.http(token).get(path)
    assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
    return answer.json()


def test_a_party_reads_in_full_and_its_business_office_without_the_childs_identifiers(
    world: World, attacks: Attacks
) -> None:
    path = f"/v1/escalations/{world.escalation_id}"
    party = _read(world, world.members["nhft"].credential, path)
    assert party["view"] == "party"
    assert party["state"]["child"]["identifiers"]["nhs_number"] == CHILD["nhs_number"]
    office_token = world.members[OFFICE].credential
    reads = [
        path,
        f"{path}/history",
        "/v1/escalations",
        "/v1/partnerships/northamptonshire/overview",
    ]
    bodies = [json.dumps(_read(world, office_token, p)) for p in reads]
    assert world.escalation_id in bodies[2]
    oversight = json.loads(bodies[0])
    assert oversight["view"] == "oversight"
    assert oversight["state"]["child"]["identifiers"] is None
    assert oversight["state"]["child"]["pseudonyms"]
    withheld = [b for b in bodies if not any(v in b for v in CHILD.values())]
    attacks.record(
        "authorisation",
        "business office reads withhold the child's identifiers",
        tried=len(bodies),
        refused=len(withheld),
    )
    assert len(withheld) == len(bodies)


def test_health_readiness_and_metrics_alone_answer_without_credentials(world: World) -> None:
    assert set(routes(world)) >= PUBLIC_ROUTES  # every other route is in the 401 sweep
    for method, path in sorted(PUBLIC_ROUTES):
        assert world.http().request(method.upper(), path).status_code == 200
