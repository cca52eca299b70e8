"""a. The embedded hub (one process: SQLite file, in-process bus) killed with SIGKILL mid-stream,
restarted on the same data directory: the ledger must balance."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.processes import hub_environment
from tests.support.receivers import Reply, always
from tests.support.report import Scenario
from tests.support.rig import running_rig, wait_until

pytestmark = pytest.mark.reliability

ESCALATIONS, ACTIONS = 10, 6  # 70 events, 210 stage updates
SLOW = Reply(delay=0.15)  # one case system answers slowly, so updates queue up behind it


def test_killing_the_embedded_hub_mid_stream_loses_and_duplicates_nothing(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "a. Embedded hub killed (SIGKILL) mid-stream and restarted"
    scenario.setup = (
        "one `escalation-hub serve` process with every role: SQLite file (WAL), in-process "
        "bus; three agencies, each with a recording case system (one answering after 0.15 s)."
    )
    env = hub_environment(workdir / "data")
    with running_rig(workdir, env, behaviours={"rel-police": always(SLOW)}) as rig:
        stream = rig.stream(escalations=ESCALATIONS, actions=ACTIONS)
        stream.start()
        third = stream.total // 3
        assert wait_until(
            lambda: len(rig.ledger.accepted) >= third and rig.in_flight() > 0, timeout=60
        ), "the stream did not get a third of its events accepted with updates in flight"
        accepted, owed = len(rig.ledger.accepted), rig.in_flight()
        hub = rig.hubs["hub"]
        hub.kill()
        scenario.step(
            f"Sent {stream.total} events ({ESCALATIONS} escalations raised, {ACTIONS} "
            f"discussions each, from 3 agencies on 3 threads). Killed the hub with SIGKILL "
            f"after {accepted} answers 202, with {owed} stage updates not yet filed."
        )
        time.sleep(0.5)
        hub.start()
        scenario.step("Restarted it on the same data directory; the senders kept retrying.")
        assert stream.join(120), "the stream did not finish within 120 s"
        report = rig.complete(timeout=60)
        replayed = sum(int(e.get("count", 0)) for e in hub.log_events("relay.replayed_unprocessed"))
        recovered = sum(int(e.get("count", 0)) for e in hub.log_events("delivery.recovered"))
    scenario.figures.update(report.figures())
    scenario.figures["accepted at the kill"] = accepted
    scenario.figures["updates in flight at the kill"] = owed
    scenario.figures["requests unanswered (hub down), sent again"] = rig.log.count(error=True)
    scenario.figures["outbox rows re-published at restarts"] = replayed
    scenario.figures["pending deliveries resumed at restarts"] = recovered
    assert not stream.failures, stream.failures
    assert report.clean, report.describe()
    assert report.accepted == stream.total


def test_a_clean_restart_of_the_embedded_hub_republishes_nothing_already_handled(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "a2. Restarting an idle embedded hub after everything was delivered"
    scenario.setup = "as a., every case system healthy."
    with running_rig(workdir, hub_environment(workdir / "data")) as rig:
        stream = rig.stream(escalations=3, actions=2)
        stream.start()
        assert stream.join(120), "the stream did not finish"
        report = rig.complete(timeout=60, settle=0.5)
        assert report.clean, report.describe()
        hub = rig.hubs["hub"]
        hub.stop()
        hub.start()
        replayed = [int(e.get("count", 0)) for e in hub.log_events("relay.replayed_unprocessed")]
    scenario.step(
        f"Sent {stream.total} events, all delivered; stopped the hub (SIGTERM) and started it."
    )
    scenario.figures["outbox rows re-published by the restart"] = sum(replayed)
    scenario.figures["outbox rows written in all (decide + deliver)"] = stream.total * 4
    assert sum(replayed) == 0, "a restart re-publishes nothing already handled"
