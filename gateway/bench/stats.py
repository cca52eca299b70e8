"""Small numeric helpers: rates, percentiles, resident memory, CPU time."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Sequence

__all__ = ["percentile", "rate", "rss_mb", "summary_ms"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(latencies_ns: Sequence[int]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of nanosecond latencies, in milliseconds."""
    ms = [v / 1e6 for v in latencies_ns]

    def r(q: float) -> float | None:
        value = percentile(ms, q)
        return None if value is None else round(value, 2)

    return {
        "n": len(ms),
        "p50_ms": r(50),
        "p95_ms": r(95),
        "p99_ms": r(99),
        "max_ms": round(max(ms), 2) if ms else None,
    }


def rate(count: int, seconds: float) -> float:
    """Events per second, rounded; 0 when nothing was timed."""
    return round(count / seconds, 1) if seconds > 0 else 0.0


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """CPU time of this process (every thread), user and system."""
    return time.process_time()
