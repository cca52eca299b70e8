"""Seeding N stored escalations, as the hub would have stored them, in big batches.

Each seeded escalation is an open stage-1 escalation between the three benchmark agencies,
after a ``raised`` and a ``discussion_recorded`` were decided and delivered:

====================  =======  ===========================================================
table                 per esc  what
====================  =======  ===========================================================
``escalations``       1        its state sealed (AES-GCM, key ring) per row: the router and
                               the scheduler read it, so it is the real thing
``parties``           3        health, social care, police with their case references
``inbound_events``    2        the two events, decided; bodies sealed per row
``deadlines``         1        the stage-1 deadline, due from 2 to 180 days ahead (spread)
``deliveries``        3        the last stage update to each party, delivered; sealed per row
====================  =======  ===========================================================

The first ``sweep_due`` deadlines fall due 12 hours after ``now`` (one second apart), so a
sweep at ``sweep_at`` finds exactly those, whatever the number stored. Nothing seeded is
pending: no outbox rows, no undecided events, no pending deliveries, so a hub started on the
seeded database has no start-up backlog. The sealed bodies of past events and deliveries are
realistic in size and sealed under their own rows' contexts, but carry template content.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from gateway.bench.documents import GROUPS, PARTNERSHIP, StateTemplate, notice_before, trio
from gateway.bench.seed_writers import Rows, Stamp, writer_for
from gateway.store.sealing import Sealer

__all__ = ["SEEDED_TABLES", "SeedReport", "seed"]

SEEDED_TABLES: Final = ("escalations", "parties", "inbound_events", "deadlines", "deliveries")
_SPREAD_SECONDS: Final = 178 * 86_400
_HISTORY: Final = b'{"seeded":"' + b"x" * 160 + b'"}'  # the body of a decided event or update

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SeedReport:
    """What was seeded, how long it took, and the sweep instant that finds ``sweep_due``."""

    stored: int
    seconds: float
    rows: dict[str, int]
    sweep_at: datetime
    sweep_due: int
    backend: str
    phases: dict[str, float] = field(default_factory=dict)
    sample: list[tuple[str, int]] = field(default_factory=list, repr=False)  # (id, group)

    def as_json(self) -> dict[str, Any]:
        return {
            "stored": self.stored,
            "seconds": round(self.seconds, 2),
            "rows": self.rows,
            "rows_per_second": round(sum(self.rows.values()) / max(self.seconds, 1e-9)),
            "sweep_due": self.sweep_due,
            "backend": self.backend,
            "phases": {k: round(v, 2) for k, v in self.phases.items()},
        }


def seed(
    url: str,
    *,
    sealer: Sealer,
    count: int,
    now: datetime,
    sweep_due: int = 100,
    batch: int = 20_000,
    sample: int = 20_000,
    progress: Progress | None = None,
) -> SeedReport:
    """Insert ``count`` escalations (and their rows) into the migrated database at ``url``;
    the report keeps the ids of ``sample`` of them, chosen at random, for the workload."""
    if count < 0 or batch < 1:
        raise ValueError("seed needs count >= 0 and batch >= 1")
    started = time.perf_counter()
    templates = tuple(StateTemplate(now, group) for group in range(GROUPS))
    rows = dict.fromkeys(SEEDED_TABLES, 0)
    due_first = min(sweep_due, count)
    rng = random.Random(os.urandom(8))  # noqa: S311 - test data, not secrets
    picked = set(rng.sample(range(count), min(sample, count)))
    ids: list[tuple[str, int]] = []
    with writer_for(url) as writer:
        context = _Context(templates, sealer, now, due_first, rng, writer.stamp, b"", picked, ids)
        for chunk in _chunks(count, batch, context):
            writer.write(chunk)
            for table, values in chunk.items():
                rows[table] += len(values)
            if progress is not None:
                progress(rows["escalations"], count)
        writer.finish()
        phases = dict(writer.phases)
    return SeedReport(
        stored=count,
        seconds=time.perf_counter() - started,
        rows=rows,
        sweep_at=now + timedelta(hours=13),
        sweep_due=due_first,
        backend=writer.backend,
        phases=phases,
        sample=ids,
    )


def _chunks(count: int, batch: int, context: _Context) -> Iterator[Rows]:
    context = dataclasses.replace(
        context, history=context.sealer.seal_bytes(_HISTORY, context="seeded-history")
    )
    for start in range(0, count, batch):
        chunk: Rows = {table: [] for table in SEEDED_TABLES}
        for index in range(start, min(count, start + batch)):
            _one(chunk, index, context)
        yield chunk


@dataclass(frozen=True)
class _Context:
    templates: tuple[StateTemplate, ...]  # one per group of agencies
    sealer: Sealer
    now: datetime
    early: int
    rng: random.Random
    stamp: Stamp
    history: bytes
    sample: set[int]
    picked: list[tuple[str, int]]


def _uuid(index: int, rng: random.Random) -> str:
    """A version-4 UUID whose leading bits count up (bulk loads append to the B-trees)."""
    h = f"{(index << 96) | rng.getrandbits(96):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _one(chunk: Rows, index: int, c: _Context) -> None:
    """The rows of one seeded escalation, appended to ``chunk``."""
    esc, rng, group = _uuid(index, c.rng), c.rng, index % GROUPS
    template, parties = c.templates[group], trio(group)
    if index in c.sample:
        c.picked.append((esc, group))
    if index < c.early:
        due = c.now + timedelta(hours=12, seconds=index)
    else:
        due = c.now + timedelta(days=2, seconds=rng.randrange(_SPREAD_SECONDS))
    notice = notice_before(due)
    opened = c.now - timedelta(seconds=rng.randrange(365 * 86_400))
    updated = opened + timedelta(hours=2)
    state = c.sealer.seal_bytes(template.render(esc, due, notice), context=f"escalation:{esc}")
    at, done = c.stamp(opened), c.stamp(updated)
    chunk["escalations"].append(
        (esc, PARTNERSHIP, PARTNERSHIP, template.procedure_version, "open", 1, 1,
         f"nhs:{rng.getrandbits(256):064x}", state, 3, 2, at, done)
    )  # fmt: skip
    chunk["deadlines"].append(
        (esc, template.deadline_id, c.stamp(due), c.stamp(notice), "pending",
         template.calendar_version)
    )  # fmt: skip
    raiser, speaker = parties[index % 3], parties[(index + 1) % 3]
    for seq, agency, kind, outcome in (
        (1, raiser, "raised", template.outcome),
        (2, speaker, "discussion_recorded", "discussion_recorded.recorded"),
    ):
        chunk["inbound_events"].append(
            (agency.source, f"seed-{esc}-{seq}", f"uk.escalation-hub.v1.{kind}", esc, seq,
             f"seed-{agency.id}", agency.id, c.history, at, at, outcome)
        )  # fmt: skip
    for number, agency in enumerate(parties, start=1):
        chunk["parties"].append((esc, agency.id, f"{agency.id.upper()}-{index:07d}"))
        chunk["deliveries"].append(
            (f"seed-{esc}-3:seed-{agency.id}", esc, f"seed-{agency.id}", "webhook",
             "http://127.0.0.1:9/seeded", c.history, "succeeded", 1, 200, None, done, done,
             index * len(parties) + number)
        )  # fmt: skip
