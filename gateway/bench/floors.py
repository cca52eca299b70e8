"""The physical floors the hub is measured against, on the same machine in the same run.

* ``http``: a bare FastAPI endpoint that only parses the same JSON body, served by uvicorn
  exactly as the hub's gateway is (same process layout, same server options);
* ``client``: the load generator against a server that does nothing (its own ceiling);
* ``receiver``: the benchmark receivers verifying and decrypting pre-made updates;
* ``db_commit``: one small-row commit per event on the hub's own engine (SQLite WAL with
  ``synchronous=FULL``, or PostgreSQL), from one thread and from several;
* ``broker``: raw kombu publish (persistent; publisher confirms on AMQP) and consume+ack
  through one queue of the same kind as the hub's (quorum on RabbitMQ).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert

from gateway.bench.http1 import build_request
from gateway.bench.loadgen import LoadGenerator, Plan, Sent
from gateway.bench.receiver import ReceiverProcess
from gateway.bench.stats import rate
from gateway.demo.stack import free_port
from gateway.store.db import make_engine, make_sessionmaker, transaction
from security import envelopes, webhooks

__all__ = [
    "client_ceiling",
    "closed_loop_rate",
    "commit_floor",
    "http_floor",
    "receiver_floor",
    "run_closed",
]


def closed_loop_rate(results: Sequence[Sent], *, ok: Callable[[int], bool]) -> dict[str, Any]:
    """Rate of good answers between the first send and the last answer."""
    good = [r for r in results if ok(r.status)]
    if not results:
        return {"n": 0, "ok": 0, "seconds": 0.0, "rate": 0.0}
    seconds = (max(r.done_ns for r in results) - min(r.sent_ns for r in results)) / 1e9
    return {
        "n": len(results),
        "ok": len(good),
        "seconds": round(seconds, 3),
        "rate": rate(len(good), seconds),
    }


def run_closed(
    load: LoadGenerator, url: str, requests: list[bytes], *, concurrency: int, max_seconds: float
) -> dict[str, Any]:
    """Drive ``requests`` closed-loop; the rate of 2xx answers."""
    plan = Plan(url, requests, concurrency=concurrency, max_seconds=max_seconds)
    results = load.run(plan)
    return closed_loop_rate(results, ok=lambda status: 200 <= status < 300)


def _bare_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/bare", status_code=202)
    async def bare(request: Request) -> JSONResponse:
        """Parse the JSON body and answer 202, nothing else."""
        document = json.loads(await request.body())
        count = len(document) if isinstance(document, list) else 1
        return JSONResponse({"accepted": count}, status_code=202)

    return app


def http_floor(
    load: LoadGenerator,
    build: Callable[[str], list[bytes]],
    *,
    concurrency: int,
    max_seconds: float,
) -> dict[str, Any]:
    """The bare FastAPI endpoint's rate for the same signed bodies (``build(base_url)``)."""
    port = free_port()
    config = uvicorn.Config(
        _bare_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="eh-bench-bare", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the bare FastAPI server did not start")
        time.sleep(0.02)
    try:
        base = f"http://127.0.0.1:{port}"
        run_closed(load, base, build(base)[:200], concurrency=concurrency, max_seconds=10)
        return run_closed(load, base, build(base), concurrency=concurrency, max_seconds=max_seconds)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def commit_floor(url: str, *, count: int, threads: int, max_seconds: float) -> dict[str, Any]:
    """Commits per second, one 600-byte row per commit, on the hub's engine settings."""
    engine = make_engine(url)
    table = Table(
        f"bench_floor_{threads}",
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("tag", String(64)),
        Column("body", LargeBinary),
    )
    table.create(engine, checkfirst=True)
    sessions = make_sessionmaker(engine)
    stop_at = time.monotonic() + max_seconds
    done = [0] * threads

    def worker(slot: int) -> None:
        for i in range(slot, count, threads):
            if time.monotonic() > stop_at:
                return
            with transaction(sessions) as session:
                session.execute(insert(table).values(tag=f"t{slot}-{i}", body=b"x" * 600))
            done[slot] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(s,)) for s in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    table.drop(engine)
    engine.dispose()
    return {"threads": threads, "commits": sum(done), "seconds": round(seconds, 3),
            "rate": rate(sum(done), seconds)}  # fmt: skip


def receiver_floor(
    load: LoadGenerator,
    receivers: ReceiverProcess,
    keys: dict[str, dict[str, Any]],
    secrets: dict[str, str],
    *,
    count: int,
    concurrency: int,
    max_seconds: float,
) -> dict[str, Any]:
    """Updates per second the receivers verify, decrypt and file (pre-made, as the hub sends)."""
    host, port = "127.0.0.1", receivers.port
    agencies = sorted(keys)
    document = {"effect": "stage_update", "escalation_id": "floor", "sequence": 0}
    requests = []
    for index in range(count):
        agency = agencies[index % len(agencies)]
        body = envelopes.encrypt_for(keys[agency], json.dumps(document).encode()).encode()
        headers = webhooks.sign([secrets[agency]], f"floor_{index}", datetime.now(UTC), body)
        headers["content-type"] = "application/jose"
        requests.append(build_request(host, port, f"/r/{agency}", body, headers))
    result = run_closed(
        load, f"http://{host}:{port}", requests, concurrency=concurrency, max_seconds=max_seconds
    )
    receivers.take()  # the floor's receipts are not the hub's
    return result


def client_ceiling(
    load: LoadGenerator, receivers: ReceiverProcess, *, count: int, max_seconds: float
) -> dict[str, Any]:
    """The load generator against ``/null`` (a server that answers at once)."""
    host, port = "127.0.0.1", receivers.port
    body = b'{"ping":1}'
    requests = [build_request(host, port, "/null", body, {}) for _ in range(count)]
    return run_closed(
        load, f"http://{host}:{port}", requests, concurrency=16, max_seconds=max_seconds
    )
