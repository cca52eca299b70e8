"""The reliability suite: crash and starve the hub, prove nothing accepted is lost.

Fixtures start private PostgreSQL and RabbitMQ instances (never the shared ones), restore them
after each test, and record each scenario's figures; RELIABILITY.md is rendered at the end of
a session that ran any scenario. Missing server binaries FAIL under CI=true, skip elsewhere.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.store import migrate
from tests.conftest import in_ci
from tests.support.processes import hub_environment
from tests.support.report import Scenario, write_report
from tests.support.services import (
    PrivatePostgres,
    PrivateRabbit,
    ServiceError,
    find_postgres_bin,
    find_rabbit_scripts,
)

OUTCOME = pytest.StashKey[tuple[str, str]]()
WRITTEN = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reliability: crashes and starves the hub (private PostgreSQL/RabbitMQ; runs in CI)",
    )


def unavailable(what: str) -> None:
    """Fail under CI (the suite must run there); skip elsewhere."""
    if in_ci():
        pytest.fail(f"{what} is not available; CI must run the reliability suite")
    pytest.skip(f"{what} is not available (the reliability suite runs in CI)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" or (report.when == "setup" and not report.passed):
        reason = str(getattr(report, "wasxfail", ""))
        outcome = ("xfailed" if report.skipped else "passed") if reason else report.outcome
        item.stash[OUTCOME] = (outcome, reason.removeprefix("reason: "))
    return report


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Scenario]:
    """The test's account for RELIABILITY.md, saved with its outcome after the test."""
    key = request.node.name.replace("[", "-").replace("]", "")
    record = Scenario(key=key, nodeid=request.node.nodeid)
    started = time.monotonic()
    yield record
    record.duration_s = round(time.monotonic() - started, 1)
    record.ran_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    record.outcome, record.reason = request.node.stash.get(OUTCOME, ("unknown", ""))
    record.save()
    request.config.stash[WRITTEN] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.config.stash.get(WRITTEN, False):
        write_report(generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this session's own (initdb + pg_ctl on a free port)."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        unavailable("PostgreSQL's server programs (initdb, pg_ctl)")
        raise AssertionError("unreachable")
    server = PrivatePostgres(bin_dir)
    try:
        server.init()
        server.start()
    except ServiceError as exc:
        server.destroy()
        unavailable(f"a private PostgreSQL ({exc})")
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def private_rabbit() -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of this session's own (own name, ports, port mapper and cookie)."""
    scripts = find_rabbit_scripts()
    if scripts is None:
        unavailable("RabbitMQ's server scripts (rabbitmq-server, rabbitmqctl)")
        raise AssertionError("unreachable")
    node = PrivateRabbit(scripts)
    try:
        node.start()
    except ServiceError as exc:
        node.destroy()
        unavailable(f"a private RabbitMQ node ({exc})")
    try:
        yield node
    finally:
        node.destroy()


@pytest.fixture
def postgres(private_postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The private PostgreSQL, started again after the test if the test left it stopped."""
    yield private_postgres
    if not private_postgres.running:
        private_postgres.start()


@pytest.fixture
def rabbit(private_rabbit: PrivateRabbit) -> Iterator[PrivateRabbit]:
    """The private RabbitMQ node, started again after the test if the test left it stopped."""
    yield private_rabbit
    if not private_rabbit.running:
        private_rabbit.start()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the hub processes keep their data and logs for this test."""
    return tmp_path


@pytest.fixture
def private_hub_env(
    workdir: Path, postgres: PrivatePostgres, rabbit: PrivateRabbit
) -> dict[str, str]:
    """A hub's test environment on a new database of the private PostgreSQL (migrated) and
    the private RabbitMQ node, with a bus prefix of its own."""
    database_url = postgres.create_database()
    migrate.upgrade(database_url)
    return hub_environment(
        workdir / "data",
        database_url=database_url,
        broker_url=rabbit.url,
        bus_prefix=f"rel{uuid.uuid4().hex[:8]}",
    )
