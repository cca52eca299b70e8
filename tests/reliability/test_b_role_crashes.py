"""b. The hub at scale (one process per role on PostgreSQL + RabbitMQ): each role killed with
SIGKILL in turn mid-stream and restarted; the ledger must balance."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from gateway.store import migrate
from tests.conftest import fresh_pg_database
from tests.support.processes import hub_environment
from tests.support.receivers import Reply, always
from tests.support.report import Scenario
from tests.support.rig import SERVERS, Rig, running_rig
from tests.support.services import delete_bus
from tests.support.traffic import Stream

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.rabbitmq]

ESCALATIONS, ACTIONS = 12, 6  # 84 events, 252 stage updates
ROLES = ("gateway", "router", "delivery", "scheduler")
HELD_BACK = 9  # events sent after each kill threshold, before the role is back
PARTITIONS = 4


def test_killing_each_role_in_turn_mid_stream_loses_and_duplicates_nothing(
    workdir: Path, scenario: Scenario, amqp_url: str
) -> None:
    scenario.title = "b. Each role (gateway, router, delivery, scheduler) killed in turn"
    scenario.setup = (
        "four `escalation-hub serve --role ...` processes on PostgreSQL (a fresh database on the "
        "shared server) and RabbitMQ (the shared server, a bus prefix of this test's own); "
        f"{PARTITIONS} decide partitions; one case system answers after 0.15 s."
    )
    prefix = f"rel{uuid.uuid4().hex[:8]}"
    with fresh_pg_database() as database_url:
        migrate.upgrade(database_url)
        env = hub_environment(
            workdir / "data",
            database_url=database_url,
            broker_url=amqp_url,
            bus_prefix=prefix,
            router_partitions=PARTITIONS,
        )
        try:
            kills = _run(workdir, env, scenario)
        finally:
            delete_bus(amqp_url, prefix, PARTITIONS)
    for role, (accepted, owed) in kills.items():
        scenario.figures[f"accepted when {role} was killed"] = accepted
        scenario.figures[f"updates in flight when {role} was killed"] = owed
    assert scenario.figures["lost"] == 0
    assert scenario.figures["duplicated state changes"] == 0
    assert scenario.figures["decided out of accepted order"] == 0
    assert scenario.figures["events accepted (202)"] == ESCALATIONS * (ACTIONS + 1)


def _run(workdir: Path, env: dict[str, str], scenario: Scenario) -> dict[str, tuple[int, int]]:
    behaviours = {"rel-police": always(Reply(delay=0.15))}
    with running_rig(workdir, env, layout=SERVERS, behaviours=behaviours) as rig:
        stream = rig.stream(escalations=ESCALATIONS, actions=ACTIONS, pause=0.05, seconds=300)
        stream.allow(0)
        stream.start()
        scenario.step(
            f"Sent {stream.total} events ({ESCALATIONS} escalations, {ACTIONS} discussions each) "
            f"from 3 agencies on 3 threads; {HELD_BACK} more events went out after each kill "
            "threshold, while the role was down, and the stream waited for the restart."
        )
        kills = {role: _kill_mid_stream(rig, stream, role, n, scenario) for n, role in _turns()}
        stream.allow(stream.total)
        assert stream.join(180), "the stream did not finish"
        assert not stream.failures, stream.failures
        report = rig.complete(timeout=90)
        scenario.figures.update(report.figures())
        scenario.figures["requests unanswered (gateway down), sent again"] = rig.log.count(
            error=True
        )
        assert all(h.alive for h in rig.hubs.values()), "a restarted role died"
    assert report.clean, report.describe()
    return kills


def _turns() -> list[tuple[int, str]]:
    return list(enumerate(ROLES, start=1))


def _kill_mid_stream(
    rig: Rig, stream: Stream, role: str, number: int, scenario: Scenario
) -> tuple[int, int]:
    """Let the stream reach this role's threshold, kill the role, let more events go, restart."""
    goal = stream.total * number // (len(ROLES) + 1)
    stream.allow(goal)
    assert stream.wait_accepted(goal, timeout=120), f"the stream stalled before the {role} kill"
    accepted, owed = len(rig.ledger.accepted), rig.in_flight()
    rig.hubs[role].kill()
    stream.allow(goal + HELD_BACK)  # events keep coming while the role is down
    time.sleep(0.3)
    started = time.monotonic()
    rig.hubs[role].start()
    scenario.step(
        f"Killed the {role} process (SIGKILL) after {accepted} answers 202 with {owed} "
        f"updates in flight; restarted it ({time.monotonic() - started:.1f} s until ready)."
    )
    return accepted, owed
