"""``escalation-hub bench``: the benchmark harness (floors, the hub, scale), JSON and table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.bench.options import PROFILES, BenchOptions
from gateway.bench.report import markdown, write_results
from gateway.bench.runner import run_bench

__all__ = ["register"]

EXIT_FAILED = 1


def register(sub: Any) -> None:
    """Add the ``bench`` command."""
    p = sub.add_parser(
        "bench",
        help="measure the hub against the physical floors of this machine (loopback only)",
        description=(
            "Measures, in one run: the floors (bare FastAPI, raw kombu, one commit per event, "
            "the receivers, the load generator), then per profile and number stored: ingest, "
            "end-to-end and router rates, latency from the 202 to each receiver at fixed "
            "offered loads, the share of CPU spent on encryption, the deadline sweep (with "
            "EXPLAIN) and memory over a longer run. Writes bench/results/<time>.json, "
            "latest.json and latest.md. A full run takes about 11 minutes on two cores; "
            "--quick about 2."
        ),
    )
    p.add_argument("--quick", action="store_true", help="small sizes, short windows, no soak")
    p.add_argument(
        "--profile",
        choices=[*PROFILES, "both"],
        default="both",
        help="embedded (SQLite + in-process bus), servers (PostgreSQL + RabbitMQ) or both",
    )
    p.add_argument("--stored", type=_sizes, help="numbers stored, e.g. 10000,1000000")
    p.add_argument("--events", type=_positive, help="events in the end-to-end burst")
    p.add_argument("--loads", type=_rates, help="offered loads in events/s, e.g. 25,50,100")
    p.add_argument("--load-seconds", type=float, help="seconds per offered load")
    p.add_argument("--soak-seconds", type=float, help="memory soak length (0: none)")
    p.add_argument(
        "--output", type=Path, default=Path("bench/results"), help="where the results go"
    )
    p.add_argument("--no-write", action="store_true", help="print the table, write no files")
    p.add_argument("--work-dir", type=Path, help="where the SQLite files go (default: /tmp)")
    p.set_defaults(handler=_bench)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 10000,1000000, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("numbers stored must be at least 1")
    return tuple(sorted(set(sizes)))


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected rates like 25,50,100, got {text!r}") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("offered loads must be above 0 events/s")
    return rates


def options_from(args: argparse.Namespace) -> BenchOptions:
    """The run's options from the command line (``--quick`` first, then explicit flags)."""
    options = BenchOptions().quick() if args.quick else BenchOptions()
    profiles = PROFILES if args.profile == "both" else (args.profile,)
    changes: dict[str, Any] = {"profiles": profiles}
    for flag, field in (("stored", "stored"), ("events", "events"), ("loads", "loads"),
                        ("load_seconds", "load_seconds"), ("soak_seconds", "soak_seconds"),
                        ("work_dir", "work_dir")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            changes[field] = value
    return replace(options, **changes)


def _bench(args: argparse.Namespace) -> int:
    options = options_from(args)
    say = print
    say(f"escalation-hub bench ({options.mode}): profiles {', '.join(options.profiles)}; "
        f"stored {', '.join(f'{n:,}' for n in options.stored)}")  # fmt: skip
    try:
        results = run_bench(options, say=lambda line: say(line, flush=True))
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"escalation-hub bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  PostgreSQL and RabbitMQ must run on 127.0.0.1 for --profile servers "
              "(EH_BENCH_PG_URL, EH_BENCH_AMQP_URL)", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    say("")
    say(markdown(results))
    if not args.no_write:
        stamped, table = write_results(results, args.output)
        say(f"wrote {stamped}, {args.output / 'latest.json'} and {table}")
    return 0
