"""schemathesis against the OpenAPI document of a live hub: all checks, zero failures, no 5xx.

Two identities (the administrator, a party agency), every operation, examples + coverage +
fuzzing, positive and negative, bounded by ``MAX_EXAMPLES`` and ``fuzz.COVERAGE_CAP``. The
document declares what each operation accepts, so schema-valid input is accepted; the few
refusals no schema can prevent are let through only with proof (``undeclarable.py``).

Operations whose document was once looser than the checks behind it (``DECLARED``) are looked
at again, four times as hard, so that a regression fails by name. A new finding in code this
suite does not own goes into ``KNOWN``: the main run leaves out exactly that check on that
operation, and a strict xfail test keeps finding it until it is fixed and the entry goes.
"""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from connectors.generic import GenericConnector
from connectors.registry import default_registry
from tests.security.conftest import Attacks
from tests.security.fuzz import EVENTS, Fuzzer, Outcome, Signer
from tests.security.matrix import path_ids
from tests.security.world import PARTIES, World

MAX_EXAMPLES = 25
IDENTITIES = ("admin", "agency")
PROBLEM_JSON = "application/problem+json"
#: (identity, operation, check) whose document was looser than what the hub accepts, fixed by
#: declaring it: loaded partnerships; JWK shape, callback URL pattern, kinds and their
#: configs; the common schema per media type; the cursor's pattern; paging after any id.
DECLARED: tuple[tuple[str, str, str], ...] = (
    ("admin", "POST /v1/agencies", "positive_data_acceptance"),
    ("admin", "POST /v1/agencies/{agency_id}/connectors", "positive_data_acceptance"),
    ("agency", "POST /v1/agencies/{agency_id}/connectors", "positive_data_acceptance"),
    ("admin", EVENTS, "positive_data_acceptance"),
    ("agency", EVENTS, "positive_data_acceptance"),
    ("admin", "GET /v1/escalations", "positive_data_acceptance"),
    ("agency", "GET /v1/escalations", "positive_data_acceptance"),
    ("admin", "GET /v1/dead-letters", "positive_data_acceptance"),
)
#: (identity, operation, check) -> what is wrong and where (schemathesis' finding).
KNOWN: dict[tuple[str, str, str], str] = {}
#: Operations with a JSON body FastAPI decodes: one that is not JSON gets a documented 422.
JSON_BODIES = ("POST /v1/agencies", "POST /v1/agencies/{agency_id}/connectors")


@pytest.fixture(scope="module")
def signers(world: World) -> list[Signer]:
    """Who signs the events route: the members' generic connectors (but nhft's, which the
    fuzzing may rotate), and one connector of each native kind for its own media types."""
    generic = GenericConnector.meta.reads
    members = [m for m in world.members.values() if m.id != "nhft"]
    return [*(Signer(m.connector_id, m.secret, generic) for m in members), *_natives(world)]


def _natives(world: World) -> list[Signer]:
    """A connector of each installed kind reading a media type the generic kind does not, to
    sign those (the common schema's media types go to generic connectors)."""
    member = world.members[PARTIES[1]]
    found = []
    for plugin in default_registry():
        native = tuple(t for t in plugin.meta.reads if t not in GenericConnector.meta.reads)
        if not native:
            continue
        body = {"kind": plugin.meta.kind, "callback_url": member.system.url}
        answer = world.http(member.credential).post(
            f"/v1/agencies/{member.id}/connectors", json={**body, "public_jwk": member.public_jwk}
        )
        assert answer.status_code == 201, answer.text
        created = answer.json()
        found.append(Signer(created["id"], created["signing_secret"], native))
    return found


def _fuzzer(
    world: World, signers: list[Signer], identity: str, examples: int = MAX_EXAMPLES
) -> Fuzzer:
    token = world.stack.admin_token if identity == "admin" else world.members["nhft"].credential
    return Fuzzer(world, token, examples, path_ids(world), signers)


def _report(outcome: Outcome) -> str:
    return "\n\n".join(f.message for f in outcome.findings.values())


def _exempted(outcome: Outcome) -> str:
    """What was let through as undeclarable, and how often (each proved on what was sent)."""
    found = sorted(outcome.undeclarable.items())
    return "; ".join(f"{reason}: {n}" for reason, n in found) or "none"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_schemathesis_finds_no_failure_and_no_server_error(
    world: World, signers: list[Signer], identity: str, attacks: Attacks
) -> None:
    skip = {(op, check) for (who, op, check) in KNOWN if who == identity}
    outcome = _fuzzer(world, signers, identity).run(skip=skip)
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(outcome.statuses.items()))
    attacks.record(
        "fuzzing",
        f"generated requests as {identity}, every check",
        tried=outcome.cases,
        refused=outcome.cases - outcome.failing,
        note=f"{statuses}; undeclarable refusals proved: {_exempted(outcome)}",
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
        *(pytest.param(*key, id="-".join(key)) for key in DECLARED),
        *(
            pytest.param(*key, marks=pytest.mark.xfail(strict=True, reason=why), id="-".join(key))
            for key, why in KNOWN.items()
        ),
    ],
)
def test_one_check_on_one_operation_holds_when_looked_at_harder(
    world: World,
    signers: list[Signer],
    identity: str,
    operation: str,
    check: str,
    attacks: Attacks,
) -> None:
    # one check on one operation: cheap enough to look four times as hard
    outcome = _fuzzer(world, signers, identity, 4 * MAX_EXAMPLES).run(only={(operation, check)})
    attacks.record(
        "fuzzing",
        f"{check} on {operation} as {identity}",
        tried=outcome.cases,
        refused=outcome.cases - outcome.failing,
        note=f"undeclarable refusals proved: {_exempted(outcome)}",
    )
    assert outcome.cases > 0
    assert outcome.findings == {}, _report(outcome)


@pytest.mark.parametrize("operation", JSON_BODIES)
def test_a_body_that_is_not_json_gets_a_documented_problem_naming_the_body(
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
    problem = answer.json() if answer.headers.get("content-type") == PROBLEM_JSON else {}
    named = problem.get("field") == "(body)" and bool(problem.get("errors"))
    attacks.record(
        "fuzzing",
        f"undecodable JSON body to {operation}",
        tried=1,
        refused=int(documented and named),
        note=str(answer.status_code),
    )
    assert documented, f"{operation} answered an undocumented {answer.status_code}"
    assert answer.status_code == 422
    assert named, answer.text
