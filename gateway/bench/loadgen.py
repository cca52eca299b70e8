"""The load generator: a small asyncio HTTP/1.1 client, in a process of its own.

Why our own: each request must carry a fresh Standard Webhooks signature and unique ids, so
requests are built and signed before a phase (outside the measured window) and written as
raw bytes on kept-alive connections. That costs a few microseconds per request, an order of
magnitude less than an ``httpx.AsyncClient`` request, so on this two-core machine the client
is not what limits the server (its own ceiling, against a server that does nothing, is
measured and reported). ``wrk`` would be as lean, but is not installed by the project and
cannot sign per request.

Two ways to drive, both bounded in count *and* time, loopback only:

* closed loop (``concurrency`` connections, each sends its next request when answered): the
  most a server takes;
* open loop (``rate`` requests per second on a fixed schedule, however the server keeps up,
  with more connections opened when all are busy): latency at a fixed offered load.

Timestamps are ``time.monotonic_ns()``: CLOCK_MONOTONIC, the same clock in every process of
the machine, so the receivers' timestamps can be compared with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from gateway.bench.http1 import loopback_host, read_response

__all__ = ["LoadGenerator", "Plan", "Sent", "run_plan"]

_MAX_OPEN_CONNECTIONS = 256


@dataclass(frozen=True)
class Plan:
    """What to send: raw requests, to one loopback URL, closed or open loop, bounded."""

    url: str
    requests: Sequence[bytes] = field(repr=False)
    concurrency: int = 16  # closed loop
    rate: float | None = None  # open loop: requests per second
    max_seconds: float = 60.0

    def __post_init__(self) -> None:
        loopback_host(self.url)
        if self.concurrency < 1 or (self.rate is not None and self.rate <= 0):
            raise ValueError("a plan needs concurrency >= 1 and, if given, rate > 0")


@dataclass(frozen=True)
class Sent:
    """One request's fate: when it was due and sent, when answered, status and body."""

    index: int
    due_ns: int
    sent_ns: int
    done_ns: int
    status: int
    body: bytes


class _Run:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.host, self.port = loopback_host(plan.url)
        self.results: list[Sent] = []
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0
        self.stop_ns = time.monotonic_ns() + int(plan.max_seconds * 1e9)

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def one(self, index: int, due_ns: int) -> None:
        reader, writer = await self.connection()
        sent = time.monotonic_ns()
        try:
            writer.write(self.plan.requests[index])
            status, body = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            writer.close()
            self.results.append(Sent(index, due_ns, sent, time.monotonic_ns(), 0, b""))
            return
        self.results.append(Sent(index, due_ns, sent, time.monotonic_ns(), status, body))
        self.idle.append((reader, writer))

    async def closed_loop(self) -> None:
        pending = iter(range(len(self.plan.requests)))

        async def lane() -> None:
            for index in pending:
                if time.monotonic_ns() > self.stop_ns:
                    return
                await self.one(index, time.monotonic_ns())

        await asyncio.gather(*(lane() for _ in range(self.plan.concurrency)))

    async def open_loop(self, rate: float) -> None:
        start = time.monotonic_ns()
        tasks: set[asyncio.Task[None]] = set()
        for index in range(len(self.plan.requests)):
            due = start + int(index * 1e9 / rate)
            if due > self.stop_ns:
                break
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            if self.opened - len(self.idle) >= _MAX_OPEN_CONNECTIONS:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.ensure_future(self.one(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=max(1.0, (self.stop_ns - start) / 1e9))

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _drive(plan: Plan) -> list[Sent]:
    run = _Run(plan)
    try:
        if plan.rate is None:
            await run.closed_loop()
        else:
            await run.open_loop(plan.rate)
    finally:
        run.close()
    return sorted(run.results, key=lambda s: s.index)


def run_plan(plan: Plan) -> list[Sent]:
    """Run one plan in this process (the benchmark runs it in ``LoadGenerator``'s process)."""
    return asyncio.run(_drive(plan))


def _serve(conn: Connection) -> None:
    """The generator process: run each plan it is sent, answer with the results."""
    while True:
        plan = conn.recv()
        if plan is None:
            return
        try:
            conn.send(("ok", run_plan(plan)))
        except (OSError, ValueError) as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class LoadGenerator:
    """A separate process (so it never competes with the hub for the GIL) that runs plans."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process: Any = context.Process(
            target=_serve, args=(child,), name="eh-bench-load", daemon=True
        )

    def __enter__(self) -> LoadGenerator:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def run(self, plan: Plan) -> list[Sent]:
        """Send ``plan`` to the generator process and wait for its results."""
        self._conn.send(plan)
        if not self._conn.poll(plan.max_seconds + 120):
            raise TimeoutError(f"the load generator did not finish within {plan.max_seconds}s")
        kind, value = self._conn.recv()
        if kind != "ok":
            raise RuntimeError(f"the load generator failed: {value}")
        results: list[Sent] = value
        return results
