"""The attack suites' record: what each test tried and how much the hub refused, and SECURITY.md.

Tests record attacks through the ``attacks`` fixture (``tests/security/conftest.py``); the
session's hooks add each test's outcome, write the results JSON and, when the whole
``tests/security`` package ran, render SECURITY.md from it with ``render``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

__all__ = ["CATEGORIES", "Attack", "Results", "RunOutcome", "render"]

#: Category key -> heading, in the order SECURITY.md shows them.
CATEGORIES: Final[dict[str, str]] = {
    "authorisation": "Authorisation on every route",
    "signatures": "Inbound signatures: window, rotation, replay",
    "impersonation": "Acting for others at ingest",
    "limits": "Limits and hostile input",
    "crypto": "Payload encryption (JWE) and outbound signatures",
    "pseudonyms": "Pseudonyms and NHS numbers",
    "callbacks": "Callback URLs (SSRF guard)",
    "leaks": "Leak scan: logs, metrics, headers, error bodies, mail",
    "fuzzing": "schemathesis against the OpenAPI document",
}


@dataclass(frozen=True)
class Attack:
    """One kind of attack as a test tried it: how many attempts, how many the hub refused."""

    category: str
    attack: str
    tried: int
    refused: int
    test: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown attack category {self.category!r}; use one of {CATEGORIES}")
        if not 0 <= self.refused <= self.tried:
            raise ValueError(f"{self.attack}: refused ({self.refused}) must be 0..tried")


@dataclass(frozen=True)
class RunOutcome:
    """How a test ended: passed, failed, skipped, xfailed (a known gap) or xpassed."""

    outcome: str
    reason: str = ""


@dataclass
class Results:
    """Everything one run of the suites recorded."""

    complete: bool = False
    attacks: list[Attack] = field(default_factory=list)
    tests: dict[str, RunOutcome] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the results file)."""
        return {
            "complete": self.complete,
            "attacks": [asdict(a) for a in self.attacks],
            "tests": {k: asdict(v) for k, v in sorted(self.tests.items())},
        }


_INTRO = """\
# Security

escalation-hub carries child-safeguarding escalations between agencies, so its security is
tested by attack suites (`tests/security/`) that run in CI with the rest of the tests. This
file is **generated** by those suites at the end of every complete run of `tests/security`
(`pytest tests/security`, or `make test`): do not edit it by hand. How the suites work and
how to add an attack: [docs/security.md](docs/security.md).

## Reporting a vulnerability

Please report suspected vulnerabilities privately to the maintainers (the repository's
private vulnerability reporting), not in a public issue. Never include real children's
details in a report.

## What the hub promises

- Every request is authorised per agency: an agency reads and acts only on escalations it
  is party to, a business office sees its own partnership without the child's identifiers,
  only the administrator registers agencies. Refusals answer 401, 403 or 404 and cross-tenant
  attempts are audited (`access_denied`).
- Inbound events are Standard Webhooks, verified in constant time within +-5 minutes, with
  two signing secrets valid across a rotation; a reused `webhook-id` never stores new content.
- Stage updates are JWE, encrypted per recipient agency with an algorithm allow-list and a
  fresh content key per message, and signed on the way out.
- Child identifiers are matched by keyed pseudonyms (HMAC, key held apart); NHS numbers are
  checked (mod 11); identifiers and narratives are sealed at rest and never appear in logs,
  metrics, headers, mail or error bodies.
- Callback URLs must reach public addresses, checked at registration and at send time.
- Bodies, JSON depth, XML, batches and request rates are limited.
"""

_OUTCOME_WORDS: Final = {
    "passed": "held",
    "failed": "**FAILED**",
    "skipped": "not run",
    "xfailed": "known gap",
    "xpassed": "**unexpectedly held**",
}


def render(results: Results) -> str:
    """SECURITY.md for one complete run."""
    lines = [_INTRO, _summary(results), *_sections(results), _gaps(results), _footer(results)]
    return "\n".join(part.rstrip() + "\n" for part in lines if part)


def _totals(attacks: Iterable[Attack]) -> tuple[int, int, int]:
    items = list(attacks)
    return len(items), sum(a.tried for a in items), sum(a.refused for a in items)


def _summary(results: Results) -> str:
    rows = ["## Summary", "", "| area | attacks | tried | refused |", "|---|---:|---:|---:|"]
    for key, title in CATEGORIES.items():
        kinds, tried, refused = _totals(a for a in results.attacks if a.category == key)
        rows.append(f"| {title} | {kinds} | {tried} | {refused} |")
    kinds, tried, refused = _totals(results.attacks)
    rows.append(f"| **all** | **{kinds}** | **{tried}** | **{refused}** |")
    counts = _outcome_counts(results.tests)
    rows += ["", f"Tests: {counts}."]
    return "\n".join(rows) + "\n"


def _outcome_counts(tests: Mapping[str, RunOutcome]) -> str:
    order = ("passed", "failed", "xfailed", "xpassed", "skipped")
    found = {name: sum(1 for t in tests.values() if t.outcome == name) for name in order}
    return ", ".join(f"{count} {name}" for name, count in found.items() if count) or "none"


def _sections(results: Results) -> list[str]:
    out: list[str] = []
    for key, title in CATEGORIES.items():
        attacks = [a for a in results.attacks if a.category == key]
        if not attacks:
            continue
        rows = [f"## {title}", "", "| attack | tried | refused | result |", "|---|---:|---:|---|"]
        for attack in attacks:
            outcome = results.tests.get(attack.test, RunOutcome("failed")).outcome
            note = f" ({attack.note})" if attack.note else ""
            word = _OUTCOME_WORDS.get(outcome, outcome)
            rows.append(
                f"| {_cell(attack.attack + note)} | {attack.tried} | {attack.refused} | {word} |"
            )
        out.append("\n".join(rows) + "\n")
    return out


def _gaps(results: Results) -> str:
    gaps = sorted((k, v) for k, v in results.tests.items() if v.outcome in ("xfailed", "failed"))
    if not gaps:
        return "## Known gaps\n\nNone: every attack the suites try is refused.\n"
    rows = ["## Known gaps", "", "Tests marked `xfail(strict=True)` (or failing) in this run:", ""]
    for nodeid, outcome in gaps:
        reason = outcome.reason or "(no reason given)"
        rows.append(f"- `{nodeid}` ({outcome.outcome}): {_cell(reason)}")
    return "\n".join(rows) + "\n"


def _footer(results: Results) -> str:
    return (
        "---\n\n"
        f"Generated from {len(results.tests)} tests in `tests/security/` "
        "(results: `build/security/results.json`).\n"
    )


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())
