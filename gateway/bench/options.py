"""What a benchmark run measures and how much: sizes, durations, services."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["PROFILES", "BenchOptions"]

PROFILES = ("embedded", "servers")


@dataclass(frozen=True)
class BenchOptions:
    """Every knob of a run; ``quick()`` and ``tiny()`` scale it down."""

    profiles: tuple[str, ...] = PROFILES
    stored: tuple[int, ...] = (10_000, 1_000_000)
    events: int = 600  # the end-to-end burst, per profile and size
    ingest_events: int = 1000  # the gateway-only intake run
    loads: tuple[float, ...] = (25.0, 50.0, 100.0)  # events/s, open loop
    load_seconds: float = 6.0
    soak_seconds: float = 120.0  # memory over a longer run (embedded, smallest size)
    soak_rate: float = 10.0  # below what the hub sustains, so no backlog grows
    router_escalations: int = 200  # x2 events per variant
    floor_requests: int = 3000
    floor_commits: int = 1000
    floor_messages: int = 2000
    concurrency: int = 16
    max_phase_seconds: float = 90.0
    pg_url: str = field(
        default_factory=lambda: os.environ.get(
            "EH_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        )
    )
    amqp_url: str = field(
        default_factory=lambda: os.environ.get(
            "EH_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"
        )
    )
    work_dir: Path | None = None  # SQLite files; a temporary directory by default
    mode: str = "full"

    def quick(self) -> BenchOptions:
        """Under two minutes: small sizes, short windows, no soak."""
        return replace(
            self,
            stored=(1_000, 10_000),
            events=100,
            ingest_events=200,
            loads=(25.0, 100.0),
            load_seconds=1.5,
            soak_seconds=0.0,
            router_escalations=20,
            floor_requests=500,
            floor_commits=200,
            floor_messages=200,
            max_phase_seconds=20.0,
            mode="quick",
        )

    def tiny(self) -> BenchOptions:
        """A few seconds per profile: proves the harness works (tests); figures mean nothing."""
        return replace(
            self.quick(),
            stored=(50, 200),
            events=12,
            ingest_events=12,
            loads=(20.0,),
            load_seconds=0.5,
            router_escalations=3,
            floor_requests=40,
            floor_commits=10,
            floor_messages=20,
            max_phase_seconds=20.0,
            mode="tiny",
        )
