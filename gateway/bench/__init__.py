"""The benchmark harness: floors, load generator, seeding, scenarios and the report.

``escalation-hub bench`` (``make bench``) runs it; ``run_bench(BenchOptions())`` is the same
from Python. Everything runs on loopback, bounded in count and time. See docs/benchmarks.md.
Nothing here connects or starts anything at import time.
"""

from gateway.bench.options import PROFILES, BenchOptions
from gateway.bench.report import goals, markdown, write_results
from gateway.bench.runner import SCHEMA, run_bench

__all__ = ["PROFILES", "SCHEMA", "BenchOptions", "goals", "markdown", "run_bench", "write_results"]
