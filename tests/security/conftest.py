"""The attack suites' recorder: each test records what it tried; the session writes SECURITY.md.

``attacks.record(category, name, tried=..., refused=...)`` adds a row. At the end of the
session the rows and every test's outcome go to ``build/security/results.json``; when the
whole ``tests/security`` package ran (nothing deselected, every file collected, every test
reported), SECURITY.md is rendered from them at the repository root.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.security.report import Attack, Results, RunOutcome, render
from tests.security.world import World, running_world

SECURITY_DIR = Path(__file__).resolve().parent
ROOT = SECURITY_DIR.parents[1]
RESULTS_FILE = ROOT / "build" / "security" / "results.json"
SECURITY_MD = ROOT / "SECURITY.md"


@dataclass
class _Run:
    """What this session collected and heard from the security tests."""

    items: set[str] = field(default_factory=set)
    partial: bool = False
    results: Results = field(default_factory=Results)


_RUN: list[_Run] = [_Run()]  # this session's; replaced in pytest_configure


class Attacks:
    """Records the attacks one test tries (see ``report.Attack``)."""

    def __init__(self, run: _Run, test: str) -> None:
        self._run, self._test = run, test

    def record(
        self, category: str, attack: str, *, tried: int, refused: int, note: str = ""
    ) -> None:
        """Add one row: ``tried`` attempts of this attack, ``refused`` of them refused."""
        row = Attack(category, attack, tried, refused, self._test, note)
        self._run.results.attacks.append(row)


@pytest.fixture
def attacks(request: pytest.FixtureRequest) -> Attacks:
    """The recorder for this test's attacks."""
    return Attacks(_RUN[0], request.node.nodeid)


def pending(module: str, reason: str) -> pytest.MarkDecorator:
    """A strict xfail while a colleague's ``module`` does not exist yet; a plain test after."""
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.xfail(missing, strict=True, reason=f"{module} does not exist yet: {reason}")


def _ours(path: Path) -> bool:
    return SECURITY_DIR in path.resolve().parents


def pytest_configure(config: pytest.Config) -> None:
    _RUN[0] = _Run()


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if any(_ours(item.path) for item in items):
        _RUN[0].partial = True


def pytest_collection_finish(session: pytest.Session) -> None:
    run = _RUN[0]
    ours = [item for item in session.items if _ours(item.path)]
    run.items = {item.nodeid for item in ours}
    files = {item.path.resolve() for item in ours}
    expected = {path.resolve() for path in SECURITY_DIR.glob("test_*.py")}
    picked = any("::" in str(arg) for arg in session.config.args)
    if files != expected or picked:
        run.partial = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    outcome = _outcome(report)
    if outcome is not None and report.nodeid in _RUN[0].items:
        _RUN[0].results.tests[report.nodeid] = outcome


def _outcome(report: pytest.TestReport) -> RunOutcome | None:
    """The test's outcome from its setup or call report (teardown only adds failures)."""
    reason = str(getattr(report, "wasxfail", "") or "")
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            return RunOutcome("xfailed" if report.skipped else "xpassed", reason)
        if report.skipped:
            skip = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            return RunOutcome("skipped", str(skip))
        return RunOutcome(report.outcome)
    if report.when == "teardown" and report.failed:
        return RunOutcome("failed", "teardown failed")
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = _RUN[0]
    if not run.items:
        return
    reported = set(run.results.tests)
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    run.results.complete = not run.partial and not interrupted and run.items <= reported
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(run.results.as_json(), indent=2) + "\n")
    if run.results.complete:
        SECURITY_MD.write_text(render(run.results))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A running hub with the attack suites' members (a module may define its own)."""
    with running_world() as built:
        yield built
