"""One benchmark run: the floors, then per profile and number stored, the hub's figures.

First the floors common to both profiles, and the CPU budget: the least CPU one fanned-out
event can cost, from the hub's own building blocks (``gateway.bench.budget``). Then per
profile (``embedded``: SQLite file + in-process bus; ``servers``: PostgreSQL + RabbitMQ)
and per number stored, on a database of its own:

1. migrate and seed (outside every measured window; its time is reported);
2. start the whole hub (``Stack``), register the agencies through the API, warm up; then the
   burst (ingest and end-to-end rates, crypto shares), the fixed offered loads (latency) and,
   once, the memory soak;
3. the router on its own (plain, sealed, sealed + JWE) and the deadline sweep with EXPLAIN;
4. a hub with the gateway role only: the intake rate;
5. drop the database and the run's queues.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from gateway.bench import budget, floors
from gateway.bench.broker import broker_floor, delete_queues
from gateway.bench.documents import AGENCIES
from gateway.bench.hubs import Registered, hub_settings, register_agencies, running_hub
from gateway.bench.loadgen import LoadGenerator
from gateway.bench.machine import load_average, machine_facts, server_versions
from gateway.bench.options import BenchOptions
from gateway.bench.phases import Driver
from gateway.bench.receiver import ReceiverProcess
from gateway.bench.report import goals, rejudge_budget
from gateway.bench.router_rate import decide_only, router_rates
from gateway.bench.seed import SeedReport, seed
from gateway.bench.sweep import sweep_timing
from gateway.bench.workload import Workload
from gateway.bootstrap import build_hub
from gateway.demo.stack import free_port, stack_settings
from gateway.runtime import Role
from gateway.store import migrate
from gateway.store.sealing import Sealer
from security.envelopes import generate_recipient_key
from security.keyring import KeyRing
from security.webhooks import new_secret

__all__ = ["SCHEMA", "run_bench"]

SCHEMA = "escalation-hub-bench/1"
Say = Callable[[str], None]
_BUDGET_ROUNDS = {"tiny": (3, 0.005), "quick": (5, 0.02)}  # mode -> (rounds, seconds each)


def run_bench(options: BenchOptions, say: Say = print) -> dict[str, Any]:
    """Run every measurement ``options`` asks for; the results as one JSON-able dict."""
    started, clock = datetime.now(UTC), time.perf_counter()
    servers = "servers" in options.profiles
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "started_at": started.isoformat(),
        "mode": options.mode,
        "options": {k: v for k, v in asdict(options).items() if k not in ("pg_url", "amqp_url")},
        "machine": machine_facts(),
    }
    results["machine"]["servers"] = server_versions(
        options.pg_url if servers else None, options.amqp_url if servers else None
    )
    work = Path(tempfile.mkdtemp(prefix="eh-bench-", dir=options.work_dir))
    try:
        with LoadGenerator() as load:
            results["floors"] = _common_floors(options, load, say)
            results["profiles"] = {
                profile: _profile(options, profile, load, work, say) for profile in options.profiles
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_end"] = load_average()
    results["seconds"] = round(time.perf_counter() - clock, 1)
    rejudge_budget(results)  # now that the commit floor is known
    results["goals"] = goals(results)
    return results


def _common_floors(options: BenchOptions, load: LoadGenerator, say: Say) -> dict[str, Any]:
    say("floors: load generator ceiling, receivers, bare FastAPI, router.decide")
    pairs = {a.id: generate_recipient_key("EC") for a in AGENCIES}
    signing = {a.id: new_secret() for a in AGENCIES}
    fake = {a.id: Registered(a.id, "con_floor", signing[a.id]) for a in AGENCIES}
    workload = Workload(fake, [])
    n, concurrency, limit = options.floor_requests, options.concurrency, options.max_phase_seconds
    with ReceiverProcess(free_port(), {k: v[0] for k, v in pairs.items()}) as receivers:
        receivers.set_secrets(signing)
        found = {
            "client": floors.client_ceiling(load, receivers, count=n * 2, max_seconds=limit),
            "receiver": floors.receiver_floor(
                load,
                receivers,
                {k: v[1] for k, v in pairs.items()},
                signing,
                count=n,
                concurrency=concurrency,
                max_seconds=limit,
            ),
        }
    found["http"] = floors.http_floor(
        load,
        lambda base: workload.requests(base, n, path="/bare"),
        concurrency=concurrency,
        max_seconds=limit,
    )
    found["decide"] = decide_only(n)
    say("  " + ", ".join(f"{k} {v['rate']:,.0f}/s" for k, v in found.items()))
    say("floors: the CPU budget of one fanned-out event")
    rounds, seconds = _BUDGET_ROUNDS.get(options.mode, (7, 0.05))
    found["budget"] = budget.measure(
        http_rate=found["http"]["rate"] or None,
        receiver_rate=found["receiver"]["rate"] or None,
        client_rate=found["client"]["rate"] or None,
        rounds=rounds,
        round_seconds=seconds,
    )
    say(f"  at least {found['budget']['event_ms']:.2f} ms of CPU per event: "
        f"{found['budget']['ceilings']['events_one_core']:,.0f} events/s on one core")  # fmt: skip
    return found


def _profile(
    options: BenchOptions, profile: str, load: LoadGenerator, work: Path, say: Say
) -> dict[str, Any]:
    broker = options.amqp_url if profile == "servers" else "memory://"
    data: dict[str, Any] = {"floors": {}, "stored": {}}
    with _database(profile, options, work, "floor") as url:
        say(f"[{profile}] floors: one commit per event, broker publish+consume")
        commits = {"one": 1, "many": options.concurrency}
        data["floors"]["db_commit"] = {
            k: floors.commit_floor(url, count=options.floor_commits, threads=t,
                                   max_seconds=options.max_phase_seconds)
            for k, t in commits.items()
        }  # fmt: skip
    prefix = f"benchfloor{secrets.token_hex(3)}"
    try:
        data["floors"]["broker"] = broker_floor(
            broker,
            prefix=prefix,
            count=options.floor_messages,
            max_seconds=options.max_phase_seconds,
        )
    finally:
        delete_queues(broker, prefix, 1)
    for index, size in enumerate(options.stored):
        soak = options.soak_seconds if profile == "embedded" and index == 0 else 0.0
        run = _session(options, profile, size, load, work, soak, say)
        if "memory" in run:
            data["memory"] = run.pop("memory")
        data["stored"][str(size)] = run
    return data


@contextmanager
def _database(profile: str, options: BenchOptions, work: Path, name: str) -> Iterator[str]:
    """A database of the run's own: a SQLite file, or a fresh PostgreSQL database."""
    if profile == "embedded":
        path = work / f"{name}-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    database = f"eh_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(options.pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield options.pg_url.rsplit("/", 1)[0] + f"/{database}"
    finally:
        with psycopg.connect(options.pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _session(
    options: BenchOptions,
    profile: str,
    size: int,
    load: LoadGenerator,
    work: Path,
    soak: float,
    say: Say,
) -> dict[str, Any]:
    tag = f"[{profile} {size:,} stored]"
    broker = options.amqp_url if profile == "servers" else "memory://"
    with _database(profile, options, work, f"hub{size}") as url:
        overrides = hub_settings(url, broker_url=broker)
        try:
            return _measure(options, url, overrides, size, load, soak, tag, say)
        finally:
            delete_queues(broker, overrides["bus_prefix"], 4)


def _seed(url: str, overrides: dict[str, Any], size: int, tag: str, say: Say) -> SeedReport:
    migrate.upgrade(url)
    ring = KeyRing.from_env_string(overrides["data_keys"], active="k1")
    step = max(1, size // 5)
    marks = iter(range(step, size + 1, step))
    next_mark = [next(marks, size + 1)]

    def progress(done: int, total: int) -> None:
        if done >= next_mark[0]:
            say(f"{tag}   seeded {done:,} / {total:,}")
            next_mark[0] = next(marks, size + 1)

    say(f"{tag} seeding")
    report = seed(url, sealer=Sealer(ring), count=size, now=datetime.now(UTC), progress=progress)
    say(f"{tag}   {sum(report.rows.values()):,} rows in {report.seconds:.1f} s")
    return report


def _measure(
    options: BenchOptions,
    url: str,
    overrides: dict[str, Any],
    size: int,
    load: LoadGenerator,
    soak: float,
    tag: str,
    say: Say,
) -> dict[str, Any]:
    report = _seed(url, overrides, size, tag, say)
    out: dict[str, Any] = {"stored": size, "seed": report.as_json()}
    pairs = {a.id: generate_recipient_key("EC") for a in AGENCIES}
    with ReceiverProcess(free_port(), {k: v[0] for k, v in pairs.items()}) as receivers:
        with running_hub(overrides) as hub:
            registered = register_agencies(
                hub.base_url,
                hub.admin_token,
                {a.id: receivers.url(a.id) for a in AGENCIES},
                {k: v[1] for k, v in pairs.items()},
            )
            receivers.set_secrets({k: r.secret for k, r in registered.items()})
            workload = Workload(registered, report.sample)
            driver = Driver(hub.base_url, workload, load, receivers, options.max_phase_seconds)
            out.update(_whole_hub(options, driver, soak, tag, say))
        say(f"{tag} router alone, deadline sweep")
        plain = build_hub(stack_settings(Path(tempfile.gettempdir()), **overrides))
        try:
            out["router"] = router_rates(plain, registered, count=options.router_escalations)
            out["sweep"] = sweep_timing(
                plain, sweep_at=report.sweep_at, expect_due=report.sweep_due
            )
        finally:
            plain.close()
        say(f"{tag} gateway role alone")
        with running_hub(overrides, frozenset({Role.GATEWAY})) as gateway:
            intake = Driver(gateway.base_url, workload, load, receivers, 0.0)
            out["ingest_gateway"] = intake.intake(
                options.ingest_events,
                concurrency=options.concurrency,
                max_seconds=options.max_phase_seconds,
            )
    say(f"{tag}   " + _line(out))
    return out


def _whole_hub(
    options: BenchOptions, driver: Driver, soak: float, tag: str, say: Say
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    say(f"{tag} whole hub: warm-up, burst of {options.events}")
    driver.warm_up(min(15, options.events))
    out["burst"] = driver.burst(
        options.events, concurrency=options.concurrency, max_seconds=options.max_phase_seconds
    )
    out["latency"] = {}
    for offered in options.loads:
        say(f"{tag} offered load {offered:g} events/s for {options.load_seconds:g} s")
        out["latency"][f"{offered:g}"] = driver.offered(offered, options.load_seconds)
    if soak > 0:
        say(f"{tag} memory soak: {options.soak_rate:g} events/s for {soak:g} s")
        out["memory"] = driver.soak(options.soak_rate, soak, every=max(1.0, soak / 30))
    return out


def _line(out: dict[str, Any]) -> str:
    burst = out.get("burst", {})
    return (
        f"ingest {out.get('ingest_gateway', {}).get('rate', 0):,.0f}/s, "
        f"e2e {burst.get('e2e_rate', 0):,.0f} events/s, "
        f"router {out.get('router', {}).get('sealed', {}).get('rate', 0):,.0f}/s, "
        f"sweep {out.get('sweep', {}).get('idle_ms')} ms idle"
    )
