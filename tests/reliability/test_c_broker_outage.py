"""c. RabbitMQ (a private node) stopped and started again mid-stream, the hub on PostgreSQL.

The database is the truth and the broker only transport: while the broker is down the gateway
keeps answering 202 (the outbox holds the decide messages), nothing hangs, and everything is
decided and delivered once the broker is back, without anyone restarting the hub.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.report import Scenario
from tests.support.rig import Rig, readiness, running_rig, wait_until
from tests.support.services import PrivateRabbit
from tests.support.traffic import HTTP_TIMEOUT, Answer, Stream

pytestmark = pytest.mark.reliability

ESCALATIONS, ACTIONS = 10, 6  # 70 events, 210 stage updates
OUTAGE_EVENTS = 20  # accepted while the broker is down


def test_the_hub_accepts_during_a_broker_outage_and_delivers_everything_after_it(
    workdir: Path, private_hub_env: dict[str, str], rabbit: PrivateRabbit, scenario: Scenario
) -> None:
    scenario.title = "c. RabbitMQ stopped and started mid-stream"
    scenario.setup = (
        "one `escalation-hub serve` process (every role) on a private PostgreSQL and a private "
        "RabbitMQ node; three agencies with recording case systems."
    )
    with running_rig(workdir, private_hub_env) as rig:
        stream = rig.stream(escalations=ESCALATIONS, actions=ACTIONS, pause=0.05, seconds=240)
        during, ready_down = _outage(rig, stream, rabbit, scenario)
        back_at = time.monotonic()
        stream.allow(stream.total)
        assert stream.join(180), "the stream did not finish"
        report = rig.complete(timeout=120)
        delivered_after = time.monotonic() - back_at
        ready_after = wait_until(lambda: readiness(rig.base_url)[0] == 200, timeout=30)
    figures = scenario.figures
    figures.update(report.figures())
    figures["answers while the broker was down"] = len(during)
    figures["of them 202"] = sum(1 for a in during if a.status == 202)
    figures["/readyz while the broker was down"] = f"{ready_down[0]} {ready_down[1]}"
    figures["slowest answer while down (s)"] = round(
        max((a.answered_at - a.sent_at for a in during), default=0), 2
    )
    figures["seconds from broker start to every update filed"] = round(delivered_after, 1)
    assert not stream.failures, stream.failures
    assert during, "no request was answered while the broker was down"
    assert all(a.status == 202 for a in during), "ingest answers 202 while the database works"
    assert rig.log.count(error=True) == 0, f"requests without an answer in {HTTP_TIMEOUT} s"
    assert ready_down[:2] == (503, ["broker"])
    assert ready_after, "/readyz did not recover by itself"
    assert report.clean, report.describe()


def _outage(
    rig: Rig, stream: Stream, rabbit: PrivateRabbit, scenario: Scenario
) -> tuple[list[Answer], tuple[int | None, list[str], str | None]]:
    """Stream a quarter, stop the broker, stream more, start it again; the answers meanwhile."""
    first = stream.total // 4
    stream.allow(first)
    stream.start()
    assert stream.wait_accepted(first, timeout=90), "the stream stalled before the outage"
    scenario.step(f"Sent {first} of {stream.total} events; all answered 202.")
    rabbit.stop()
    down_since, filed_before = time.monotonic(), _filed(rig)
    stream.allow(first + OUTAGE_EVENTS)
    ready_down = readiness(rig.base_url)
    assert stream.wait_accepted(first + OUTAGE_EVENTS, timeout=60), "ingest stalled"
    during = rig.log.between(down_since, time.monotonic())
    scenario.figures["updates filed while the broker was down"] = _filed(rig) - filed_before
    rabbit.start()
    scenario.step(
        f"Stopped the RabbitMQ node (`rabbitmqctl stop`); the stream went on: "
        f"{len(during)} answers while it was down."
    )
    scenario.step("Started the node again; nobody touched the hub.")
    return during, ready_down


def _filed(rig: Rig) -> int:
    return sum(len(system.updates()) for system in rig.systems.values())
