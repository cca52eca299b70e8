"""schemathesis against the OpenAPI document of a live hub: all checks, zero failures, no 5xx.

Two identities (the administrator, a party agency), every operation, examples + coverage +
fuzzing, positive and negative, bounded by ``MAX_EXAMPLES`` (the whole file runs in well
under 90 seconds on loopback). Failures schemathesis found in other people's code are listed
in ``KNOWN``: the main run leaves out exactly that check on exactly that operation, and a
strict xfail test per entry keeps finding it, until it is fixed and the entry must go.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from gateway.demo.stack import Stack
from tests.security.conftest import Attacks
from tests.security.fuzz import EVENTS, Fuzzer, Outcome
from tests.security.matrix import path_ids
from tests.security.world import World, build_world

MAX_EXAMPLES = 25
IDENTITIES = ("admin", "agency")
_BODY_400 = (
    "a body that is not JSON (e.g. not UTF-8) gets FastAPI's own 400 'There was an error "
    "parsing the body', which the operation does not document and which names no field; "
    "gateway/api/problems.py could answer it as a documented 400/422 problem naming '(body)'"
)
#: Operations answering FastAPI's undocumented 400 to a body that is not JSON: the main run
#: leaves ``status_code_conformance`` out for them; a deterministic xfail test sends one.
BODY_400 = ("POST /v1/agencies", "POST /v1/agencies/{agency_id}/connectors")
#: (identity, operation, check) -> what is wrong and where (schemathesis' finding).
KNOWN: dict[tuple[str, str, str], str] = {
    ("admin", "POST /v1/agencies", "positive_data_acceptance"): (
        "gateway/api/routes_admin.py AgencyIn.partnerships takes any strings, but only loaded "
        "procedure ids are accepted (422 'Unknown partnership'); declare them as an enum"
    ),
    ("admin", "POST /v1/agencies/{agency_id}/connectors", "positive_data_acceptance"): (
        "gateway/api/routes_connectors.py ConnectorIn declares public_jwk as any object, "
        "callback_url as any string and kind as any slug, so schema-valid bodies get 422 "
        "('Unusable public key'...); declare the JWK shape (kty, crv enum, base64url members), "
        "a URL pattern and the installed kinds"
    ),
    ("agency", "POST /v1/agencies/{agency_id}/connectors", "positive_data_acceptance"): (
        "as for the administrator: ConnectorIn's public_jwk, callback_url and kind are looser "
        "in the OpenAPI document than the checks in routes_connectors.py"
    ),
    ("admin", EVENTS, "positive_data_acceptance"): (
        "gateway/api/routes_events.py declares the body as 'an object or an array of objects' "
        "because each connector kind reads its own native format; a generic connector refuses "
        "schema-valid bodies with 422; declare the common schema for application/json"
    ),
    ("agency", EVENTS, "positive_data_acceptance"): (
        "the events body is declared as any object or array (see the administrator's entry)"
    ),
    ("admin", "GET /v1/escalations", "positive_data_acceptance"): (
        "gateway/api/routes_reads.py declares cursor as any string of up to 400 characters, "
        "but only unpadded base64url that round-trips is accepted (422 'Invalid cursor'); "
        "declare the pattern"
    ),
    ("agency", "GET /v1/escalations", "positive_data_acceptance"): (
        "cursor is declared as any string but must be unpadded base64url (routes_reads.py)"
    ),
    ("admin", "GET /v1/dead-letters", "positive_data_acceptance"): (
        "gateway/services/deadletters.py refuses 'after' unless it names an existing delivery "
        "(422, and the detail quotes the value); keyset paging needs no existing row: page "
        "after any id, or declare the constraint"
    ),
}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with Stack() as stack:
        built = build_world(stack)
        try:
            yield built
        finally:
            built.close()


def _fuzzer(world: World, identity: str, examples: int = MAX_EXAMPLES) -> Fuzzer:
    token = world.stack.admin_token if identity == "admin" else world.members["nhft"].credential
    # nhft's own connector may be rotated by the fuzzing; the others sign the events route
    signers = [(m.connector_id, m.secret) for m in world.members.values() if m.id != "nhft"]
    return Fuzzer(world, token, examples, path_ids(world), signers)


def _report(outcome: Outcome) -> str:
    return "\n\n".join(f.message for f in outcome.findings.values())


@pytest.mark.parametrize("identity", IDENTITIES)
def test_schemathesis_finds_no_failure_and_no_server_error(
    world: World, identity: str, attacks: Attacks
) -> None:
    skip = {(op, check) for (who, op, check) in KNOWN if who == identity}
    skip |= {(op, "status_code_conformance") for op in BODY_400}
    outcome = _fuzzer(world, identity).run(skip=skip)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(outcome.statuses.items()))
    attacks.record(
        "fuzzing",
        f"generated requests as {identity}, every check",
        tried=outcome.cases,
        refused=outcome.cases - outcome.failing,
        note=statuses,
    )
    attacks.record(
        "fuzzing",
        f"server errors (5xx) as {identity}",
        tried=outcome.cases,
        refused=outcome.cases - outcome.server_errors,
    )
    assert outcome.cases > 500
    assert outcome.server_errors == 0, _report(outcome)
    assert outcome.findings == {}, _report(outcome)


@pytest.mark.parametrize(
    ("identity", "operation", "check"),
    [
        pytest.param(*key, marks=pytest.mark.xfail(strict=True, reason=why), id="-".join(key))
        for key, why in KNOWN.items()
    ],
)
def test_a_known_schemathesis_finding_is_still_found(
    world: World, identity: str, operation: str, check: str, attacks: Attacks
) -> None:
    # one check on one operation: cheap enough to look four times as hard for the finding
    outcome = _fuzzer(world, identity, 4 * MAX_EXAMPLES).run(only={(operation, check)})
    attacks.record(
        "fuzzing",
        f"{check} on {operation} as {identity}",
        tried=outcome.cases,
        refused=outcome.cases - outcome.failing,
    )
    assert outcome.cases > 0
    assert outcome.findings == {}, _report(outcome)


@pytest.mark.xfail(strict=True, reason=_BODY_400)
@pytest.mark.parametrize("operation", BODY_400)
def test_a_body_that_is_not_json_gets_a_documented_problem(
    world: World, operation: str, attacks: Attacks
) -> None:
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_url(f"{world.base_url}/v1/openapi.json")
    case = schema[path][method].Case(path_parameters={"agency_id": "nhft"}, body={})
    answer = world.http(world.stack.admin_token).post(
        path.replace("{agency_id}", "nhft"),
        content=b"}\x80\xcdS",
        headers={"content-type": "application/json"},
    )
    documented = True
    try:
        case.validate_response(answer, checks=[status_code_conformance])
    except FailureGroup:
        documented = False
    attacks.record(
        "fuzzing",
        f"undecodable JSON body to {operation}",
        tried=1,
        refused=int(documented),
        note=str(answer.status_code),
    )
    assert documented, f"{operation} answered an undocumented {answer.status_code}"
