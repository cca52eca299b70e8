"""e. Receivers that fail: 500s, timeouts, 429 with Retry-After, exhaustion, 410 Gone.

The hub (one process, embedded) retries with the same webhook id until a receiver takes the
update, honours Retry-After, never lets one failing agency hold up the others, dead-letters
what it cannot deliver, and delivers a dead letter when an operator replays it. A connector
disabled by a 410 keeps every update decided for it as a dead letter, and enabling it again
(``POST /v1/connectors/{id}/enable``, with ``replay=true`` in one step) sends them all, in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import hub_environment
from tests.support.receivers import Reply, always, fail_first, healthy, spread
from tests.support.report import Scenario
from tests.support.rig import Rig, running_rig, wait_until

pytestmark = pytest.mark.reliability

HEALTH, CSC, POLICE = "rel-health", "rel-csc", "rel-police"
ATTEMPTS, BACKOFF, TIMEOUT = 4, 0.05, 0.5
SETUP = (
    "one `escalation-hub serve` process (every role, SQLite, in-process bus); "
    f"EH_DELIVERY_ATTEMPTS={ATTEMPTS}, EH_DELIVERY_BACKOFF_INITIAL={BACKOFF}, "
    f"EH_DELIVERY_BACKOFF_MAX=3, EH_DELIVERY_TIMEOUT={TIMEOUT}."
)


def _env(workdir: Path) -> dict[str, str]:
    return hub_environment(
        workdir / "data",
        delivery_attempts=ATTEMPTS,
        delivery_backoff_initial=BACKOFF,
        delivery_backoff_max=3.0,
        delivery_timeout=TIMEOUT,
    )


def test_receivers_that_fail_or_time_out_get_every_update_once_with_the_same_webhook_id(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "e1. Receivers answering 500 twice, or too late, then recovering"
    scenario.setup = SETUP
    behaviours = {
        HEALTH: fail_first(2, Reply(500)),
        POLICE: fail_first(1, Reply(200, delay=2 * TIMEOUT, file=True)),
    }
    with running_rig(workdir, _env(workdir), behaviours=behaviours) as rig:
        stream = rig.stream(escalations=4, actions=3)
        stream.start()
        assert stream.join(120), "the stream did not finish"
        report = rig.complete(timeout=60)
        health, police = rig.systems[HEALTH], rig.systems[POLICE]
        tries = {len(health.attempts_of(r.webhook_id)) for r in health.updates()}
        scenario.step(
            f"Sent {stream.total} events. {HEALTH} answered 500 to the first two attempts of "
            f"every update; {POLICE} filed every update but answered its first attempt only "
            f"after {2 * TIMEOUT} s (past the hub's timeout); {CSC} was healthy."
        )
        figures = scenario.figures
        figures.update(report.figures())
        figures[f"attempts per update at {HEALTH}"] = ", ".join(map(str, sorted(tries)))
        figures["wait after the 1st 500 (min / median / max)"] = spread(health.gaps(1))
        figures["wait after the 2nd 500 (min / median / max)"] = spread(health.gaps(2))
        figures[f"repeats at {POLICE} (timed out, then sent again)"] = police.repeats
    assert report.clean, report.describe()
    assert min(tries) == 3, "each update is attempted until it succeeds"
    assert min(health.gaps(1)) >= BACKOFF, "the first wait is the initial backoff at least"
    assert min(health.gaps(2)) >= 2 * BACKOFF, "the second wait doubles it"
    assert police.repeats >= len(police.updates()), "every timed-out update was sent again"


def test_a_receiver_asking_to_retry_later_is_waited_for_without_delaying_the_others(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "e2. One receiver answering 429 with Retry-After: 1; the others healthy"
    scenario.setup = SETUP
    behaviours = {HEALTH: fail_first(1, Reply(429, headers={"Retry-After": "1"}))}
    with running_rig(workdir, _env(workdir), behaviours=behaviours) as rig:
        stream = rig.stream(escalations=3, actions=2)
        stream.start()
        assert stream.join(120), "the stream did not finish"
        report = rig.complete(timeout=60)
        slow, others = rig.systems[HEALTH], [rig.systems[CSC], rig.systems[POLICE]]
        healthy_done = max(a.order for s in others for a in s.arrivals if a.status == 200)
        slow_done = max(a.order for a in slow.arrivals if a.status == 200)
        slow_by_then = sum(1 for a in slow.arrivals if a.status == 200 and a.order < healthy_done)
        waits = slow.gaps(1)
    scenario.step(
        f"Sent {stream.total} events. {HEALTH} answered 429 with Retry-After: 1 to the first "
        "attempt of every update; the other two case systems were healthy."
    )
    scenario.figures.update(report.figures())
    scenario.figures["wait after 429 (min / median / max), asked 1 s"] = spread(waits)
    scenario.figures[f"{HEALTH} updates filed when the healthy ones had all of theirs"] = (
        f"{slow_by_then} of {len(slow.updates())}"
    )
    assert report.clean, report.describe()
    assert min(waits) >= 0.95, "Retry-After is honoured"
    assert healthy_done < slow_done, "the healthy agencies finished before the throttled one"
    assert slow_by_then < len(slow.updates())


def test_exhausted_and_gone_deliveries_are_dead_lettered_and_replay_delivers_them(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "e3. Exhausted (500 always) and gone (410) receivers; dead letters replayed"
    scenario.setup = SETUP
    behaviours = {HEALTH: always(Reply(500)), POLICE: always(Reply(410))}
    with running_rig(workdir, _env(workdir), behaviours=behaviours) as rig:
        stream = rig.stream(escalations=3, actions=2, actors=[HEALTH, CSC])
        stream.start()
        assert stream.join(120), "the stream did not finish"
        expected = len(rig.ledger.accepted)
        settled = lambda: len(_dead_of(rig, HEALTH)) == expected and not rig.pending_deliveries()  # noqa: E731
        assert wait_until(settled, timeout=60), "the failing deliveries did not settle"
        scenario.step(
            f"Sent {stream.total} events from {HEALTH} and {CSC}. {HEALTH} answered 500 to "
            f"everything; {POLICE} answered 410 Gone; {CSC} was healthy."
        )
        _check_dead_letters(rig, scenario, expected)
        _replay_exhausted(rig, scenario)
        _replay_gone(rig, scenario)
        report = rig.complete(timeout=60)
    scenario.figures.update(report.figures())
    assert report.clean, report.describe()


def test_a_party_whose_receiver_answered_410_gets_every_update_after_re_enabling_and_replay(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "e4. Updates decided while a connector is disabled (410), after re-enabling"
    scenario.setup = SETUP
    with running_rig(workdir, _env(workdir), behaviours={POLICE: always(Reply(410))}) as rig:
        stream = rig.stream(escalations=2, actions=3, actors=[HEALTH, CSC])
        stream.start()
        assert stream.join(120), "the stream did not finish"
        expected = len(rig.ledger.accepted)
        settled = lambda: len(_dead_of(rig, POLICE)) == expected and not rig.pending_deliveries()  # noqa: E731
        assert wait_until(settled, timeout=60), f"not every update for {POLICE} was kept"
        held = _dead_of(rig, POLICE)
        gone = len(rig.systems[POLICE].arrivals)
        rig.systems[POLICE].behaviour = healthy  # the agency has put its endpoint back
        enabled = _enable(rig, rig.members[POLICE].connector_id, replay=True)
        report = rig.complete(timeout=60)
        filed_after = len(rig.systems[POLICE].updates())
    scenario.step(
        f"Sent {stream.total} events from {HEALTH} and {CSC}; {POLICE}'s endpoint answered 410 "
        f"Gone (requests: {gone}), which disabled its connector. Every update for {POLICE} was "
        f"kept as a dead letter ({len(held)}: the 410, those queued behind it, and those decided "
        "while it was disabled)."
    )
    scenario.step(
        f"Made {POLICE}'s endpoint healthy again, then enabled the connector with "
        f"`POST /v1/connectors/{{id}}/enable?replay=true` (answer "
        f"{enabled['status_code']}, status {enabled['status']}, {enabled['replayed']} dead letters "
        f"replayed in the same step). {POLICE} then had {filed_after} "
        f"updates filed, {len(report.out_of_order)} of its escalations out of sequence order."
    )
    figures = scenario.figures
    figures.update(report.figures())
    figures[f"dead letters of {POLICE} before enabling"] = len(held)
    figures["of them never sent (connector disabled)"] = sum(
        1 for d in held if "disabled" in (d["last_error"] or "")
    )
    figures[f"requests {POLICE}'s endpoint got while gone (410)"] = gone
    figures["replayed by the enable"] = enabled["replayed"]
    assert enabled["status"] == "active"
    assert enabled["replayed"] == len(held) == expected
    assert report.clean, report.describe()
    assert not report.out_of_order, report.out_of_order


def _dead(rig: Rig) -> list[dict[str, Any]]:
    with rig.admin() as admin:
        items: list[dict[str, Any]] = admin.get("/v1/dead-letters?limit=500").json()["items"]
    return items


def _dead_of(rig: Rig, agency_id: str) -> list[dict[str, Any]]:
    connector = rig.members[agency_id].connector_id
    return [d for d in _dead(rig) if d["id"].endswith(f":{connector}")]


def _check_dead_letters(rig: Rig, scenario: Scenario, expected: int) -> None:
    exhausted, gone = _dead_of(rig, HEALTH), _dead_of(rig, POLICE)
    member = rig.members[POLICE]
    status = httpx.get(
        f"{rig.base_url}/v1/connectors/{member.connector_id}",
        headers={"authorization": f"Bearer {member.token}"},
        timeout=10,
    ).json()["status"]
    figures = scenario.figures
    figures[f"dead letters of {HEALTH} (500)"] = len(exhausted)
    figures[f"attempts of each ({HEALTH})"] = ", ".join(
        sorted({str(d["attempts"]) for d in exhausted})
    )
    figures[f"dead letters of {POLICE} (the 410, then kept while disabled)"] = len(gone)
    figures[f"attempts of each ({POLICE}), oldest first"] = ", ".join(
        str(d["attempts"]) for d in gone
    )
    figures[f"{POLICE} connector after the 410"] = status
    assert len(exhausted) == expected
    assert gone, "the 410 was dead-lettered"
    assert {d["attempts"] for d in exhausted} == {ATTEMPTS}
    assert {d["last_status"] for d in exhausted} == {500}
    assert status == "disabled"
    assert len(rig.systems[CSC].updates()) == expected, "the healthy agency got everything"


def _replay_exhausted(rig: Rig, scenario: Scenario) -> None:
    rig.systems[HEALTH].behaviour = healthy
    dead = _dead_of(rig, HEALTH)
    with rig.admin() as admin:
        answers = {admin.post(f"/v1/dead-letters/{d['id']}/replay").status_code for d in dead}
    wanted = {d["id"] for d in dead}
    system = rig.systems[HEALTH]
    assert wait_until(lambda: wanted <= {r.webhook_id for r in system.updates()}, timeout=60)
    scenario.step(
        f"Made {HEALTH} healthy and replayed its {len(dead)} dead letters "
        f"(answers {sorted(answers)}): each arrived under its dead letter's id."
    )
    assert answers == {202}


def _replay_gone(rig: Rig, scenario: Scenario) -> None:
    dead = _dead_of(rig, POLICE)
    with rig.admin() as admin:
        refused = admin.post(f"/v1/dead-letters/{dead[0]['id']}/replay")
    rig.systems[POLICE].behaviour = healthy
    enabled = _enable(rig, rig.members[POLICE].connector_id, replay=False)
    with rig.admin() as admin:
        answers = {admin.post(f"/v1/dead-letters/{d['id']}/replay").status_code for d in dead}
    wanted = {d["id"] for d in dead}
    system = rig.systems[POLICE]
    arrived = wait_until(lambda: wanted <= {r.webhook_id for r in system.updates()}, timeout=60)
    scenario.step(
        f"Replaying a {POLICE} dead letter while its connector is disabled answered "
        f"{refused.status_code} ({refused.json().get('detail')}). Made {POLICE} healthy, enabled "
        f"its connector with `POST /v1/connectors/{{id}}/enable` (answer "
        f"{enabled['status_code']}, status {enabled['status']}), then replayed its {len(dead)} "
        f"dead letters one by one (answers {sorted(answers)}), those decided while it was "
        "disabled among them: each arrived under its dead letter's id."
    )
    scenario.figures[f"replay of a {POLICE} dead letter while disabled"] = refused.status_code
    assert refused.status_code == 409
    assert enabled["status"] == "active"
    assert answers == {202}
    assert arrived, "the replayed dead letters did not arrive"


def _enable(rig: Rig, connector_id: str, *, replay: bool) -> dict[str, Any]:
    """Enable the connector through the API, as an operator does; its answer."""
    with rig.admin() as admin:
        answer = admin.post(
            f"/v1/connectors/{connector_id}/enable", params={"replay": str(replay).lower()}
        )
    body: dict[str, Any] = answer.json()
    return {**body, "status_code": answer.status_code}
