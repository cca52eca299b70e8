"""schemathesis against the live OpenAPI document: every operation, every check, bounded.

``Fuzzer.run`` loads ``/v1/openapi.json`` from a running hub and, for each operation, builds
the same Hypothesis test ``schema.parametrize()`` would (explicit examples, coverage cases and
fuzzing, positive and negative), authenticated through a schemathesis auth provider, with
path parameters generated or set to real object ids, and every registered check. Failures
are collected per (operation, check) instead of stopping the run, with the first message.
The signed events route is sent signed (Standard Webhooks) by the world's connectors in
turn, so bodies get past the signature to translation; ``schema.parametrize()`` would not.

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

from security.webhooks import sign
from tests.security.world import World

__all__ = ["EVENTS", "Finding", "Fuzzer", "Outcome", "all_checks", "check_name"]

EVENTS: Final = "POST /v1/connectors/{connector_id}/events"
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


@dataclass
class Fuzzer:
    """Runs schemathesis against the world's hub with one identity."""

    world: World
    token: str
    max_examples: int
    path_ids: dict[str, str]
    signers: list[tuple[str, str]]  # (connector id, signing secret) for the events route
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
            checks = self._checks(operation.label, wanted, skipped)
            if checks:
                for real_ids in (False, True) if operation.path_parameters else (False,):
                    self._operation(operation, checks, real_ids, outcome)
        return outcome

    def _checks(self, label: str, wanted: set[Key], skipped: set[Key]) -> list[Any]:
        found = all_checks()
        if wanted:
            return [c for c in found if (label, check_name(c)) in wanted]
        return [c for c in found if (label, check_name(c)) not in skipped]

    def _operation(
        self, operation: Any, checks: list[Any], real_ids: bool, outcome: Outcome
    ) -> None:
        ids = {p.name: self.path_ids[p.name] for p in operation.path_parameters} if real_ids else {}
        signers = itertools.cycle(self.signers)

        def test(case: Any) -> None:
            outcome.cases += 1
            try:
                if operation.label == EVENTS:
                    self._signed(case, checks, outcome, next(signers), real_ids)
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
        create_test(operation=operation, test_func=test, config=config)()

    def _signed(
        self,
        case: Any,
        checks: list[Any],
        outcome: Outcome,
        signer: tuple[str, str],
        real_ids: bool,
    ) -> None:
        """Send an events case signed by a real connector; validate the answer as usual."""
        connector_id, secret = signer
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
