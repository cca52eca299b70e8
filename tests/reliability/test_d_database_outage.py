"""d. PostgreSQL (a private instance) stopped and started again mid-stream.

While the hub cannot store, ingest must answer 503 with Retry-After, never 202 (a 202 is a
promise that the event is stored); /readyz says the database is down; and once PostgreSQL is
back the hub recovers by itself: every event accepted before, during (none) and after the
outage reaches every party exactly once.

d2 stops PostgreSQL while one party's updates queue behind a slow receiver. A lane sends one
update at a time, in order, so that party's backlog drains at its receiver's pace (1 s each)
after the outage: the scenario waits for the ledger, and reports how long that took, rather
than fixing a time the lane cannot meet.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.receivers import Reply, always
from tests.support.report import Scenario
from tests.support.rig import Rig, readiness, running_rig, wait_until
from tests.support.services import PrivatePostgres
from tests.support.traffic import Answer, Stream

pytestmark = pytest.mark.reliability

ESCALATIONS, ACTIONS = 10, 6  # 70 events, 210 stage updates
REFUSALS = 12  # answers collected while the database is down
SLOW, SLOW_REPLY = "rel-police", 1.0  # d2: the party whose receiver answers after a second


def test_ingest_answers_503_during_a_database_outage_and_the_hub_recovers_by_itself(
    workdir: Path, private_hub_env: dict[str, str], postgres: PrivatePostgres, scenario: Scenario
) -> None:
    scenario.title = "d. PostgreSQL stopped and started mid-stream"
    scenario.setup = (
        "one `escalation-hub serve` process (every role) on a private PostgreSQL and a private "
        "RabbitMQ node; three agencies with recording case systems."
    )
    with running_rig(workdir, private_hub_env) as rig:
        stream = rig.stream(escalations=ESCALATIONS, actions=ACTIONS, pause=0.05, seconds=240)
        during, ready_down = _outage(rig, stream, postgres, scenario)
        back_at = time.monotonic()
        stream.allow(stream.total)
        assert stream.join(180), "the stream did not finish"
        report = rig.complete(timeout=120)
        recovered_in = time.monotonic() - back_at
        ready_after = wait_until(lambda: readiness(rig.base_url)[0] == 200, timeout=60)
        stuck = rig.pending_deliveries()
    figures = scenario.figures
    figures.update(report.figures())
    figures["answers while the database was down"] = len(during)
    figures["of them 503 with Retry-After"] = sum(1 for a in during if _refused(a))
    figures["of them 202"] = sum(1 for a in during if a.status == 202)
    figures["/readyz while the database was down"] = f"{ready_down[0]} {ready_down[1]}"
    figures["seconds from database start to every update filed"] = round(recovered_in, 1)
    figures["deliveries still pending at the end"] = stuck
    assert not stream.failures, stream.failures
    assert during, "no request was answered while the database was down"
    assert all(_refused(a) for a in during), [a.status for a in during]
    assert rig.log.count(error=True) == 0, "every request got an answer within its timeout"
    assert ready_down[:2] == (503, ["database"])
    assert ready_after, "/readyz did not recover by itself"
    assert report.clean, report.describe()
    assert stuck == 0, "no delivery is left pending"


def _refused(answer: Answer) -> bool:
    return answer.status == 503 and answer.retry_after is not None


def _outage(
    rig: Rig, stream: Stream, postgres: PrivatePostgres, scenario: Scenario
) -> tuple[list[Answer], tuple[int | None, list[str], str | None]]:
    """Stream a quarter, stop PostgreSQL, collect answers, start it again; the answers."""
    first = stream.total // 4
    stream.allow(first)
    stream.start()
    assert stream.wait_accepted(first, timeout=90), "the stream stalled before the outage"
    drained = lambda: rig.in_flight() == 0 and rig.pending_deliveries() == 0  # noqa: E731
    assert wait_until(drained, timeout=60, every=0.2), "deliveries did not drain"
    scenario.step(
        f"Sent {first} of {stream.total} events; all answered 202 and were delivered before "
        "the outage (d2 stops the database while deliveries are under way)."
    )
    postgres.stop(mode="fast")
    down_since = time.monotonic()
    stream.allow(first + 6)  # the senders keep trying these while the database is down
    got_refusals = wait_until(lambda: _count_refusals(rig, down_since) >= REFUSALS, timeout=60)
    ready_down = readiness(rig.base_url)
    during = rig.log.between(down_since, time.monotonic())
    postgres.start()
    assert got_refusals, "the hub gave no answers while the database was down"
    scenario.step(
        "Stopped PostgreSQL (`pg_ctl stop -m fast`); the senders kept sending 6 more events, "
        f"retrying each on 503; {len(during)} answers came while it was down."
    )
    scenario.step("Started PostgreSQL again; nobody touched the hub.")
    return during, ready_down


def _count_refusals(rig: Rig, since: float) -> int:
    return sum(1 for a in rig.log.between(since, time.monotonic()) if a.status == 503)


def test_deliveries_queued_during_a_database_outage_are_delivered_after_it(
    workdir: Path, private_hub_env: dict[str, str], postgres: PrivatePostgres, scenario: Scenario
) -> None:
    scenario.title = "d2. Deliveries queued behind a slow receiver during a PostgreSQL outage"
    scenario.setup = (
        "as d., with one case system answering after 1 s, so its updates queue in the hub."
    )
    slow = {SLOW: always(Reply(delay=SLOW_REPLY))}
    with running_rig(workdir, private_hub_env, behaviours=slow) as rig:
        stream = rig.stream(escalations=2, actions=5)
        stream.start()
        assert stream.join(120), "the stream did not finish"
        police = rig.systems[SLOW]
        assert wait_until(lambda: len(police.updates()) >= 1, timeout=60)
        owed = rig.in_flight()
        owed_slow = sum(1 for key in rig.ledger.check(rig.systems).lost if key[2] == SLOW)
        postgres.stop(mode="fast")
        time.sleep(3)
        postgres.start()
        back_at = time.monotonic()
        report = rig.complete(timeout=owed_slow * SLOW_REPLY + 60)
        drained_in = time.monotonic() - back_at
        settled = wait_until(lambda: rig.pending_deliveries() == 0, timeout=30)
        stuck = rig.pending_deliveries()
        hub = rig.hubs["hub"]
        waits, crashed = hub.log_events("delivery.lane_waiting"), hub.log_events("delivery.crashed")
    scenario.step(
        f"Sent {stream.total} events; stopped PostgreSQL (`pg_ctl stop -m fast`) for 3 s while "
        f"{owed} updates were still owed, {owed_slow} of them to {SLOW}, whose lane sends one at "
        f"a time and whose receiver answers after {SLOW_REPLY:g} s; started it again."
    )
    outcome = f"{len(report.lost)} updates still missing" if report.lost else "every update filed"
    scenario.step(
        f"The lanes waited out the outage ({len(waits)} 'delivery.lane_waiting', "
        f"{len(crashed)} 'delivery.crashed' log entries) and went on by themselves, nobody "
        f"touching the hub: {outcome} {drained_in:.1f} s after PostgreSQL started ({SLOW}'s "
        f"backlog alone takes {owed_slow - 1} x {SLOW_REPLY:g} s or more)."
    )
    figures = scenario.figures
    figures.update(report.figures())
    figures[f"updates owed to {SLOW} (1 s per answer) at the stop"] = owed_slow
    figures["seconds from database start to every update filed"] = round(drained_in, 1)
    figures["'delivery.lane_waiting' log entries"] = len(waits)
    figures["deliveries dead-lettered as crashed"] = len(crashed)
    figures["deliveries still pending at the end"] = stuck
    assert report.clean, report.describe()
    assert not crashed, "a store outage is waited out, never dead-lettered"
    assert settled, f"{stuck} deliveries are still pending"
