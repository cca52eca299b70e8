"""f. Duplicate and out-of-order inputs: one state change each, decided in the order accepted.

A case system retries: the same request again (same webhook-id), the same event in a new
request, the same event twice in a batch, an old event long after newer ones. Several agencies
act on one escalation at once. The hub must number every new event once, contiguously, decide
them in that order, and give every party exactly one update per number.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.events import discussion_event, raised_event
from tests.support.processes import hub_environment
from tests.support.report import Scenario
from tests.support.rig import Rig, running_rig
from tests.support.traffic import Member

pytestmark = pytest.mark.reliability

REPEATS, PER_AGENCY = 5, 8


def _raise(rig: Rig) -> str:
    member = rig.members["rel-health"]
    parties = {m.agency_id: m.kind for m in rig.members.values()}
    rig.ledger.sent(1)
    response = rig.sender().send(member, [raised_event(member.agency_id, parties, ref="F")])
    return str(rig.ledger.record(member.agency_id, response.json())[0].escalation_id)


def _send(rig: Rig, member: Member, events: list[dict[str, Any]], webhook_id: str) -> Any:
    rig.ledger.sent(len(events))
    response = rig.sender().send(member, events, webhook_id=webhook_id)
    assert response.status_code == 202, response.text
    rig.ledger.record(member.agency_id, response.json())
    return response.json()


def _concurrently(jobs: list[Callable[[], object]]) -> None:
    failures: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            job()
        except (AssertionError, httpx.HTTPError) as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures


def test_repeated_requests_and_events_make_one_state_change_each(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "f1. The same request, the same event, again and late"
    scenario.setup = "one `escalation-hub serve` process (every role, SQLite, in-process bus)."
    with running_rig(workdir, hub_environment(workdir / "data")) as rig:
        subject, csc = _raise(rig), rig.members["rel-csc"]
        first = discussion_event(csc.agency_id, subject, ref="F-1")
        hook = f"msg_{uuid.uuid4().hex}"
        answers = [_send(rig, csc, [first], hook) for _ in range(REPEATS)]
        _concurrently([lambda: answers.append(_send(rig, csc, [first], hook))] * REPEATS)
        again = [_send(rig, csc, [first], f"msg_{uuid.uuid4().hex}") for _ in range(3)]
        second = discussion_event(csc.agency_id, subject, ref="F-2")
        batch = _send(rig, csc, [second, second], f"msg_{uuid.uuid4().hex}")
        third = discussion_event(csc.agency_id, subject, ref="F-3")
        _send(rig, csc, [third], f"msg_{uuid.uuid4().hex}")
        late = _send(rig, csc, [first], f"msg_{uuid.uuid4().hex}")
        report = rig.complete(timeout=60)
    scenario.step(
        f"Raised an escalation; sent one discussion event {2 * REPEATS} times as the same "
        f"request (same webhook-id; {REPEATS} one after another, {REPEATS} at once)."
    )
    scenario.step("Sent the same event in 3 new requests (new webhook-ids).")
    scenario.step(
        "Sent a batch holding one new event twice; then a third event; then the first again."
    )
    scenario.figures.update(report.figures())
    scenario.figures["distinct answers to the repeated request"] = len({repr(a) for a in answers})
    assert len({repr(a) for a in answers}) == 1, "a repeated request gets the first answer"
    assert all(a["accepted"][0]["duplicate"] for a in [*again, late])
    assert {a["accepted"][0]["sequence"] for a in [*again, late]} == {2}
    assert [e["sequence"] for e in batch["accepted"]] == [3, 3]
    assert report.accepted == 4
    assert report.clean, report.describe()


def test_concurrent_agencies_on_one_escalation_are_decided_in_the_order_accepted(
    workdir: Path, scenario: Scenario
) -> None:
    scenario.title = "f2. Three agencies acting on one escalation at once, event times reversed"
    scenario.setup = "one `escalation-hub serve` process (every role, SQLite, in-process bus)."
    with running_rig(workdir, hub_environment(workdir / "data")) as rig:
        subject = _raise(rig)
        start = datetime.now(UTC)

        def act(member: Member) -> None:
            for n in range(PER_AGENCY):
                when = start - timedelta(minutes=n)  # each event claims to be older
                event = discussion_event(member.agency_id, subject, ref=f"F-{n}", when=when)
                _send(rig, member, [event], f"msg_{uuid.uuid4().hex}")

        _concurrently([partial(act, m) for m in rig.members.values()])
        report = rig.complete(timeout=60)
        history = _history(rig, subject)
    decided = [e["decided_at"] for e in history["events"]]
    scenario.step(
        f"Raised an escalation; then each of the 3 agencies sent {PER_AGENCY} discussion events "
        "on its own thread at the same time, each event's CloudEvents time older than the last."
    )
    scenario.figures.update(report.figures())
    scenario.figures["sequence numbers given"] = f"1..{len(history['events'])}"
    assert [e["seq"] for e in history["events"]] == list(range(1, 2 + 3 * PER_AGENCY))
    assert decided == sorted(decided), "decided in the order accepted"
    assert report.accepted == 1 + 3 * PER_AGENCY
    assert report.clean, report.describe()
    assert not report.out_of_order, "every party filed the updates in sequence order"


def _history(rig: Rig, escalation_id: str) -> dict[str, Any]:
    with rig.admin() as admin:
        history: dict[str, Any] = admin.get(f"/v1/escalations/{escalation_id}/history").json()
    return history
