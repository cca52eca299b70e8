"""The ledger itself must be able to fail: it finds lost, duplicated, unexpected, misattributed
and out-of-order updates (no hub, no network: documents filed straight into case systems)."""

from __future__ import annotations

import json

import pytest

from connectors.simulator import Received
from tests.support.ledger import Ledger
from tests.support.receivers import RecordingCaseSystem

pytestmark = pytest.mark.reliability

ESCALATION = "esc-1"


def _accepted(ledger: Ledger, by: str, sequence: int) -> None:
    entry = {"escalation_id": ESCALATION, "sequence": sequence, "id": f"e{sequence}"}
    ledger.record(by, {"accepted": [entry | {"type": "discussion_recorded", "duplicate": False}]})


def _file(system: RecordingCaseSystem, sequence: int, by: str, webhook_id: str) -> None:
    document = {
        "effect": "stage_update",
        "escalation_id": ESCALATION,
        "sequence": sequence,
        "event": "discussion_recorded",
        "summary": f"{by} recorded a discussion.",
    }
    body = json.dumps(document).encode()
    system.received.append(Received(webhook_id, "application/json", body))


def _systems() -> dict[str, RecordingCaseSystem]:
    return {name: RecordingCaseSystem(name) for name in ("a", "b")}


def test_a_party_that_filed_every_accepted_event_once_balances_the_ledger() -> None:
    ledger, systems = Ledger(["a", "b"]), _systems()
    for seq in (1, 2):
        _accepted(ledger, "a", seq)
        for name, system in systems.items():
            _file(system, seq, "a", f"{seq}:{name}")
    report = ledger.check(systems)
    assert report.clean
    assert report.figures()["stage updates filed"] == 4


def test_the_ledger_counts_a_missing_update_as_lost() -> None:
    ledger, systems = Ledger(["a", "b"]), _systems()
    _accepted(ledger, "a", 1)
    _file(systems["a"], 1, "a", "1:a")
    report = ledger.check(systems)
    assert report.lost == [(ESCALATION, 1, "b")]
    assert not report.clean


def test_the_ledger_counts_one_update_under_two_webhook_ids_as_duplicated() -> None:
    ledger, systems = Ledger(["a"]), _systems()
    _accepted(ledger, "a", 1)
    _file(systems["a"], 1, "a", "first")
    _file(systems["a"], 1, "a", "second")
    report = ledger.check({"a": systems["a"]})
    assert report.duplicated == [(ESCALATION, 1, "a")]
    assert not report.clean


def test_the_ledger_flags_updates_never_accepted_decided_out_of_order_or_filed_out_of_order() -> (
    None
):
    ledger, systems = Ledger(["a"]), _systems()
    _accepted(ledger, "a", 1)
    _accepted(ledger, "b", 2)
    _file(systems["a"], 2, "a", "2")  # names the wrong agency: decided out of order
    _file(systems["a"], 1, "a", "1")  # filed after 2
    _file(systems["a"], 3, "a", "3")  # never answered 202
    report = ledger.check({"a": systems["a"]})
    assert report.misattributed == [(ESCALATION, 2, "a")]
    assert report.unexpected == [(ESCALATION, 3, "a")]
    assert report.out_of_order == [("a", ESCALATION)]
    assert not report.clean


def test_the_ledger_counts_a_gap_in_the_accepted_sequence_numbers() -> None:
    ledger = Ledger(["a"])
    _accepted(ledger, "a", 1)
    _accepted(ledger, "a", 3)
    assert ledger.check({}).sequence_gaps == 1
