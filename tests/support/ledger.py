"""The ledger: every event the hub answered 202 to, against what every receiver filed.

For each accepted (not duplicate) event, numbered ``sequence`` in its escalation, every party
must file exactly one stage update with that escalation and sequence:

* lost        an expected (escalation, sequence, party) that no receiver filed;
* duplicated  one (escalation, sequence, party) filed under two or more webhook ids
              (a repeat delivery with the SAME webhook id is fine: the receiver de-duplicates);
* unexpected  a state change for a sequence the hub never answered 202 for;
* misattributed  the update does not name the agency whose event was accepted with that number
              (so the hub did not decide the events in the order it accepted them);
* out of order   a receiver filed an escalation's sequences other than in increasing order.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.receivers import RecordingCaseSystem

__all__ = ["Entry", "Ledger", "LedgerReport"]

Key = tuple[str, int, str]  # escalation id, sequence, party agency id


@dataclass(frozen=True)
class Entry:
    """One event in a 202 answer."""

    escalation_id: str
    sequence: int
    event_id: str
    type: str
    by: str
    duplicate: bool


@dataclass
class LedgerReport:
    """The comparison; ``clean`` when nothing is lost, duplicated, unexpected or misattributed."""

    events_sent: int
    accepted: int
    duplicate_answers: int
    expected_updates: int
    filed_updates: int
    repeats: int
    rejections: int
    sequence_gaps: int
    lost: list[Key] = field(default_factory=list)
    duplicated: list[Key] = field(default_factory=list)
    unexpected: list[Key] = field(default_factory=list)
    misattributed: list[Key] = field(default_factory=list)
    out_of_order: list[tuple[str, str]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        problems = (self.lost, self.duplicated, self.unexpected, self.misattributed)
        return not any(problems) and self.sequence_gaps == 0

    def figures(self) -> dict[str, int]:
        return {
            "events sent": self.events_sent,
            "events accepted (202)": self.accepted,
            "answered as duplicates": self.duplicate_answers,
            "stage updates expected": self.expected_updates,
            "stage updates filed": self.filed_updates,
            "lost": len(self.lost),
            "duplicated state changes": len(self.duplicated),
            "unexpected state changes": len(self.unexpected),
            "decided out of accepted order": len(self.misattributed),
            "sequence gaps": self.sequence_gaps,
            "repeat deliveries (same webhook-id)": self.repeats,
            "filed out of sequence order": len(self.out_of_order),
        }

    def describe(self) -> str:
        """A short account of what is wrong, for assertion messages."""
        return (
            f"lost {self.lost[:5]} ({len(self.lost)}), duplicated {self.duplicated[:5]}, "
            f"unexpected {self.unexpected[:5]}, misattributed {self.misattributed[:5]}, "
            f"gaps {self.sequence_gaps}"
        )


class Ledger:
    """Records 202 answers (thread-safe) and checks receivers against them."""

    def __init__(self, parties: Sequence[str]) -> None:
        self.parties = tuple(parties)
        self.entries: list[Entry] = []
        self._sent = 0
        self._lock = threading.Lock()

    def sent(self, events: int) -> None:
        with self._lock:
            self._sent += events

    def record(self, by: str, body: Mapping[str, Any]) -> list[Entry]:
        """The entries of one 202 body (``accepted``: escalation id, sequence, duplicate)."""
        entries = [
            Entry(e["escalation_id"], e["sequence"], e["id"], e["type"], by, e["duplicate"])
            for e in body["accepted"]
        ]
        with self._lock:
            self.entries.extend(entries)
        return entries

    @property
    def accepted(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if not e.duplicate]

    def check(self, systems: Mapping[str, RecordingCaseSystem]) -> LedgerReport:
        accepted = {(e.escalation_id, e.sequence): e for e in self.accepted}
        expected = {(esc, seq, party) for esc, seq in accepted for party in self.parties}
        filed: dict[Key, set[str]] = defaultdict(set)
        report = self._report(accepted, expected, systems)
        for party, system in systems.items():
            order: dict[str, list[int]] = defaultdict(list)
            for item in system.updates():
                doc = item.document
                if doc.get("event") == "rejected":
                    report.rejections += 1
                    continue
                key = (str(doc.get("escalation_id")), int(doc.get("sequence", -1)), party)
                filed[key].add(item.webhook_id)
                order[key[0]].append(key[1])
                entry = accepted.get(key[:2])
                if entry is not None and not str(doc.get("summary", "")).startswith(entry.by):
                    report.misattributed.append(key)
            report.out_of_order += [(party, e) for e, s in order.items() if s != sorted(s)]
        report.filed_updates = sum(len(ids) for ids in filed.values())
        report.lost = sorted(expected - filed.keys())
        report.duplicated = sorted(k for k, ids in filed.items() if len(ids) > 1)
        report.unexpected = sorted(k for k in filed if k not in expected)
        return report

    def _report(
        self,
        accepted: Mapping[tuple[str, int], Entry],
        expected: set[Key],
        systems: Mapping[str, RecordingCaseSystem],
    ) -> LedgerReport:
        by_escalation: dict[str, list[int]] = defaultdict(list)
        for esc, seq in accepted:
            by_escalation[esc].append(seq)
        gaps = sum(
            1 for seqs in by_escalation.values() if sorted(seqs) != list(range(1, len(seqs) + 1))
        )
        with self._lock:
            sent, duplicates = self._sent, sum(1 for e in self.entries if e.duplicate)
        return LedgerReport(
            events_sent=sent,
            accepted=len(accepted),
            duplicate_answers=duplicates,
            expected_updates=len(expected),
            filed_updates=0,
            repeats=sum(s.repeats for s in systems.values()),
            rejections=0,
            sequence_gaps=gaps,
        )

    def wait_complete(
        self, systems: Mapping[str, RecordingCaseSystem], timeout: float
    ) -> LedgerReport:
        """Poll until every expected update is filed or ``timeout`` passes; the last check."""
        end = time.monotonic() + timeout
        while True:
            report = self.check(systems)
            if not report.lost or time.monotonic() >= end:
                return report
            time.sleep(0.1)
