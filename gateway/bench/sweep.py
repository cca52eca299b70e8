"""The deadline sweep at N stored: its time, idle and with a fixed number due, and its plans.

The sweep is the scheduler's own (``gateway.services.scheduler.sweep``). Idle: nothing is due
(the usual case, every ``EH_SCHEDULER_INTERVAL``); the median of several. Due: at the seeded
``sweep_at``, when exactly ``sweep_due`` deadlines have fallen due whatever the number stored.
The plans of both index queries are printed by the database itself (``EXPLAIN QUERY PLAN``
on SQLite, ``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL) for the scheduler's own queries,
rendered with the sweep instant as a literal.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from gateway.bootstrap import Hub
from gateway.services.scheduler import due_query, notice_query, sweep
from gateway.store.db import make_engine

__all__ = ["explain", "sweep_timing"]

_INDEXES = ("ix_deadlines_due", "ix_deadlines_notice")


def sweep_timing(
    hub: Hub, *, sweep_at: datetime, expect_due: int, repeat: int = 9
) -> dict[str, Any]:
    """Milliseconds of an idle sweep (median) and of one that feeds ``expect_due``."""
    idle = []
    for _ in range(repeat):
        started = time.perf_counter()
        sweep(hub, now=datetime.now(UTC), limit=500)
        idle.append((time.perf_counter() - started) * 1000)
    plans = explain(hub.settings.sqlalchemy_url, sweep_at)
    started = time.perf_counter()
    fed = sweep(hub, now=sweep_at, limit=500)
    due_ms = (time.perf_counter() - started) * 1000
    return {
        "idle_ms": round(statistics.median(idle), 2),
        "due_ms": round(due_ms, 2),
        "fed": fed,
        "expected": expect_due,
        "per_deadline_ms": round(due_ms / fed, 3) if fed else None,
        "explain": plans,
        "uses_index": all(
            any(name in line for line in plans[query] for name in _INDEXES) for query in plans
        ),
    }


def explain(url: str, now: datetime) -> dict[str, list[str]]:
    """The database's plan for each of the sweep's two index queries, as text lines."""
    engine = make_engine(url)
    prefix = (
        "EXPLAIN QUERY PLAN "
        if engine.dialect.name == "sqlite"
        else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    )
    plans: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            for name, query in (("due", due_query(now, 500)), ("notice", notice_query(now, 500))):
                sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
                rows = conn.exec_driver_sql(prefix + sql).all()
                plans[name] = [" | ".join(str(v) for v in row) for row in rows]
    finally:
        engine.dispose()
    return plans
