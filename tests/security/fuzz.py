"""schemathesis against the live OpenAPI document: every operation, every check, bounded.

``Fuzzer.run`` loads ``/v1/openapi.json`` from a running hub and, for each operation, builds
the same Hypothesis test ``schema.parametrize()`` would (explicit examples, coverage cases and
fuzzing, positive and negative), authenticated through a schemathesis auth provider, with
path parameters generated or set to real object ids, and every registered check. Failures
are collected per (operation, check) instead of stopping the run, with the first message.
The signed events route is sent signed (Standard Webhooks) by the world's connectors in
turn, each body by a connector whose kind reads its media type, so bodies get past the
signature to translation; ``schema.parametrize()`` would not.

Coverage cases are capped per operation (``COVERAGE_CAP``, an even sample): the common schema
of the events body alone yields some 20,000, mostly answered 429 by the rate limit.

``positive_data_acceptance`` is run with the exemptions in ``undeclarable.py``: a schema-valid
request refused for a reason no JSON Schema can state counts as accepted only when the hub's
own check, run here on the value sent, refuses it too. Each exemption is counted.

(``schemathesis.pytest.from_fixture`` would do this in a test, but its lazy loader breaks on
pytest 9: it reads ``request.node._nodeid``; hence the builder is called directly.)
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.auths import AuthStorage, AuthStorageMark
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.generation.overrides import Override
from schemathesis.openapi.checks import RejectedPositiveData

from security.webhooks import sign
from tests.security.undeclarable import Undeclarable, exemption
from tests.security.world import World

__all__ = ["EVENTS", "Finding", "Fuzzer", "Outcome", "Signer", "all_checks", "check_name"]

EVENTS: Final = "POST /v1/connectors/{connector_id}/events"
COVERAGE_CAP: Final = 600  # coverage cases per operation and run, evenly sampled beyond it
Key = tuple[str, str]  # (operation label, check name)


def all_checks() -> list[Any]:
    """Every check schemathesis has registered (``--checks all``)."""
    load_all_checks()
    return list(CHECKS.get_all())


def check_name(check: Any) -> str:
    return str(getattr(check, "__name__", type(check).__name__))


@dataclass(frozen=True)
class Finding:
    """The first failure of one check on one operation."""

    operation: str
    check: str
    message: str


@dataclass
class Outcome:
    """What one run sent and found."""

    cases: int = 0
    failing: int = 0  # cases that failed at least one check
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[Key, Finding] = field(default_factory=dict)
    undeclarable: Counter[str] = field(default_factory=Counter)  # exempted refusals, by reason

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def _bearer(token: str) -> AuthStorage[str]:
    """A schemathesis auth provider sending ``Authorization: Bearer token``."""
    storage: AuthStorage[str] = AuthStorage()

    class Bearer:
        def get(self, case: Any, context: Any) -> str:
            return token

        def set(self, case: Any, data: str, context: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    storage.auth(refresh_interval=None)(Bearer)
    return storage


@dataclass(frozen=True)
class Signer:
    """A connector that signs events-route bodies of the media types its kind reads."""

    connector_id: str
    secret: str
    reads: tuple[str, ...]


@dataclass
class Fuzzer:
    """Runs schemathesis against the world's hub with one identity."""

    world: World
    token: str
    max_examples: int
    path_ids: dict[str, str]
    signers: list[Signer]  # for the events route
    session: requests.Session = field(default_factory=requests.Session)

    def run(self, only: Iterable[Key] = (), skip: Iterable[Key] = ()) -> Outcome:
        """Every operation (or only those named in ``only``, with only those checks)."""
        schema = schemathesis.openapi.from_url(f"{self.world.base_url}/v1/openapi.json")
        outcome, wanted, skipped = Outcome(), set(only), set(skip)
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), (
                f"the OpenAPI document has an invalid operation: {result}"
            )
            operation = result.ok()
            checks = self._checks(operation.label, wanted, skipped, outcome)
            if checks:
                for real_ids in (False, True) if operation.path_parameters else (False,):
                    self._operation(operation, checks, real_ids, outcome)
        return outcome

    def _checks(
        self, label: str, wanted: set[Key], skipped: set[Key], outcome: Outcome
    ) -> list[Any]:
        found = [self._exempting(c, outcome) for c in all_checks()]
        if wanted:
            return [c for c in found if (label, check_name(c)) in wanted]
        return [c for c in found if (label, check_name(c)) not in skipped]

    def _exempting(self, check: Any, outcome: Outcome) -> Any:
        """``positive_data_acceptance`` that lets an undeclarable refusal through (counted)."""
        if check_name(check) != "positive_data_acceptance":
            return check
        assert self.world.stack.hub is not None
        loopback = self.world.stack.hub.settings.allow_loopback_callbacks

        def positive_data_acceptance(ctx: Any, response: Any, case: Any) -> bool | None:
            try:
                result: bool | None = check(ctx, response, case)
                return result
            except RejectedPositiveData:
                found: Undeclarable | None = exemption(case, response, allow_loopback=loopback)
                if found is None:
                    raise
                outcome.undeclarable[found.reason] += 1
                return None

        return positive_data_acceptance

    def _operation(
        self, operation: Any, checks: list[Any], real_ids: bool, outcome: Outcome
    ) -> None:
        ids = {p.name: self.path_ids[p.name] for p in operation.path_parameters} if real_ids else {}
        turns = itertools.count()

        def test(case: Any) -> None:
            outcome.cases += 1
            try:
                if operation.label == EVENTS:
                    self._signed(case, checks, outcome, self._signer(case, next(turns)), real_ids)
                else:
                    response = case.call_and_validate(
                        base_url=self.world.base_url, session=self.session, checks=checks
                    )
                    outcome.statuses[response.status_code] += 1
            except FailureGroup as group:
                outcome.failing += 1
                for failure in group.exceptions:
                    self._found(outcome, operation.label, failure, str(group))

        AuthStorageMark.set(test, _bearer(self.token))
        config = HypothesisTestConfig(
            project=operation.schema.config,
            modes=list(HypothesisTestMode),
            settings=settings(
                max_examples=self.max_examples,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
            override=Override(path_parameters=ids),
        )
        hypothesis_test = create_test(operation=operation, test_func=test, config=config)
        _cap_coverage(hypothesis_test)
        hypothesis_test()

    def _signer(self, case: Any, turn: int) -> Signer:
        """The next connector (in turn) whose kind reads the case's media type; any if none."""
        media_type = (case.media_type or "").split(";")[0].strip().lower()
        readers = [s for s in self.signers if media_type in s.reads] or self.signers
        return readers[turn % len(readers)]

    def _signed(
        self,
        case: Any,
        checks: list[Any],
        outcome: Outcome,
        signer: Signer,
        real_ids: bool,
    ) -> None:
        """Send an events case signed by a real connector; validate the answer as usual."""
        connector_id, secret = signer.connector_id, signer.secret
        if real_ids:
            case.path_parameters = {"connector_id": connector_id}
        kwargs = case.as_transport_kwargs(base_url=self.world.base_url)
        body = _body(kwargs)
        headers = {
            k: v for k, v in kwargs["headers"].items() if not k.lower().startswith("webhook-")
        }
        if real_ids and body is not None and _utf8(body):
            headers |= sign([secret], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
        response = self.session.request(kwargs["method"], kwargs["url"], data=body, headers=headers)
        outcome.statuses[response.status_code] += 1
        case.validate_response(response, checks=checks, headers=headers, transport_kwargs=kwargs)

    def _found(self, outcome: Outcome, label: str, failure: Any, message: str) -> None:
        name = _failed_check(failure)
        outcome.findings.setdefault((label, name), Finding(label, name, message[:3000]))


def _cap_coverage(test: Any) -> None:
    """Keep at most ``COVERAGE_CAP`` of the coverage cases attached to ``test``, evenly spread.

    The schema's own examples (and anything else attached) stay; order is kept.
    """
    examples = getattr(test, "hypothesis_explicit_examples", None)
    if not isinstance(examples, list):
        return
    coverage = [i for i, example in enumerate(examples) if _phase(example) == "coverage"]
    if len(coverage) <= COVERAGE_CAP:
        return
    step = len(coverage) / COVERAGE_CAP
    dropped = set(coverage) - {coverage[int(n * step)] for n in range(COVERAGE_CAP)}
    examples[:] = [example for i, example in enumerate(examples) if i not in dropped]


def _phase(example: Any) -> str:
    """The schemathesis phase an attached example comes from ('coverage', 'examples'...)."""
    case = (getattr(example, "kwargs", None) or {}).get("case")
    phase = getattr(getattr(case, "meta", None), "phase", None)
    return str(getattr(phase, "name", ""))  # a StrEnum


def _body(kwargs: dict[str, Any]) -> bytes | None:
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    return data if isinstance(data, bytes) else None


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False  # Standard Webhooks sign text: such a body goes unsigned (401)
    return True


def _failed_check(failure: Any) -> str:
    """The check a schemathesis failure came from (its class names the checks that raise it)."""
    names = getattr(type(failure), "checks", ())
    return str(names[0]) if names else type(failure).__name__
