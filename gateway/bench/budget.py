"""The budget: the least CPU one fanned-out event can cost, summed from its irreducible parts.

The hub's CPU per event (docs/benchmarks.md) says where its time goes; the budget says how low
it could go with the same building blocks. Each part is timed in this process, with the calls
and libraries the hub itself uses, as CPU time of the calling thread (``time.thread_time``):
the median over several rounds after a warm-up round. CPU only: a commit's fsync wait and a
POST's round trip are not CPU and not counted. One event that fans out to three parties::

    1 x  a bare FastAPI request served by uvicorn (from the bare-HTTP floor's rate: that
         server keeps its one thread busy, so its time per request is about its CPU), the
         Standard Webhooks verify, the validation of the agency event, one commit of a
         ~600-byte row (SQLite, the hub's engine settings) and one publish + consume on
         kombu's memory transport (the bus of the embedded profile);
    3 x  a delivery: seal + unseal of its stage update at rest, the JWE for the party's EC key,
         the Standard Webhooks signature, one POST with the delivery's own guarded httpx
         client (kept alive, to a loopback server in another process that answers at once)
         and one commit (the attempt recorded).

Beyond that the hub renders the update, unseals the connector's secrets, signs twice, decides,
seals the inbound event and the escalation state, and audits: rendering is timed and shown
apart. The ceilings are what the minimum allows on one core (the GIL holds the hub's Python to
one) and on every core, also less what the receivers and the load generator spend per event
(their floors, measured in the same run); ``report.judge_budget`` sets it against the goals.
"""

from __future__ import annotations

import base64
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kombu.messaging import Consumer
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, insert

from connectors.client import signed_headers
from gateway.bench import floors
from gateway.bench.documents import AGENCIES, PARTNERSHIP, raised_event
from gateway.bench.hubs import Registered
from gateway.bench.loadgen import LoadGenerator
from gateway.bench.receiver import ReceiverProcess
from gateway.bench.report import judge_budget
from gateway.bench.workload import Workload
from gateway.bus.publisher import Publisher, broker_connection
from gateway.bus.topology import Topology
from gateway.demo.stack import free_port, stack_settings
from gateway.services.attempts import JOSE_MEDIA_TYPE
from gateway.services.egress import guarded_client
from gateway.services.rendering import render
from gateway.store.db import make_engine
from gateway.store.sealing import Sealer
from router import procedures
from router.decide import decide
from schemas.envelope import agency_event_adapter
from schemas.updates import StageUpdate
from security import envelopes, webhooks
from security.keyring import KeyRing, generate_key

__all__ = ["DELIVERIES", "PARTS", "bare_http_rate", "measure"]

DELIVERIES: Final = 3  # health, social care and police each receive the update
PARTS: Final = {  # what each part is, in the order of the report
    "http": "bare FastAPI request served by uvicorn (JSON body parsed)",
    "verify": "Standard Webhooks verify of the inbound request",
    "validate": "pydantic validation of the agency event",
    "publish_consume": "kombu publish + consume + ack, memory transport",
    "commit": "SQLite commit of a ~600-byte row (WAL, synchronous=FULL)",
    "seal_unseal": "seal + unseal of the stage update at rest",
    "jwe": "JWE of the rendered update for the party's EC key",
    "sign": "Standard Webhooks signature of the JWE",
    "post": "POST with the delivery's guarded httpx client, kept alive",
}
_INTAKE: Final = ("http", "verify", "validate", "publish_consume", "commit")  # once per event
_DELIVERY: Final = ("seal_unseal", "jwe", "sign", "post", "commit")  # once per delivery
_PLACEHOLDER_ID: Final = "00000000-0000-4000-8000-000000000000"


def _spend(op: Callable[[], object], calls: int) -> float:
    started = time.thread_time_ns()
    for _ in range(calls):
        op()
    return (time.thread_time_ns() - started) / 1e9


def _cpu_ms(op: Callable[[], object], *, rounds: int, round_seconds: float) -> dict[str, Any]:
    """Thread CPU per call of ``op``: median of ``rounds`` rounds of about ``round_seconds``."""
    calls, spent = 1, _spend(op, 1)
    while spent < round_seconds / 4 and calls < 10_000:  # warm-up, and the size of a round
        calls *= 2
        spent = _spend(op, calls)
    calls = max(3, min(50_000, math.ceil(calls * round_seconds / max(spent, 1e-6))))
    samples = [_spend(op, calls) * 1000 / calls for _ in range(rounds)]
    median = statistics.median(samples)
    spread = round((max(samples) - min(samples)) / max(median, 1e-9), 3)
    return {"cpu_ms": round(median, 4), "calls": calls * rounds, "spread": spread}


class _Documents:
    """What one event carries: the signed inbound request, and a stage update as delivered."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.secret = webhooks.new_secret()
        self.inbound = raised_event(AGENCIES[0], "budget-1", now)
        self.body = json.dumps(self.inbound, separators=(",", ":")).encode()
        self.headers = signed_headers(self.secret, self.body, msg_id="msg_budget_1")
        event = agency_event_adapter.validate_python({**self.inbound, "subject": _PLACEHOLDER_ID})
        decision = decide(None, event, procedures.load(PARTNERSHIP), now)
        updates = [e for e in decision.effects if isinstance(e, StageUpdate)]
        if len(updates) != DELIVERIES:
            raise RuntimeError(f"the budget's 'raised' made {len(updates)} stage updates, not 3")
        self.update = updates[0].model_dump(mode="json")
        self.rendered, self.media_type = render("generic", self.update)  # what a party receives
        self.public_jwk = envelopes.generate_recipient_key("EC")[1]  # as the receivers' keys
        self.jwe = envelopes.encrypt_for(self.public_jwk, self.rendered).encode()
        key = "k1:" + base64.b64encode(generate_key()).decode()
        self.sealer = Sealer(KeyRing.from_env_string(key, active="k1"))


def _in_memory_ops(docs: _Documents) -> dict[str, Callable[[], object]]:
    """The parts that are pure computation, each as one call (``render``: not counted)."""
    secrets, context, parsed = [docs.secret], "delivery:budget-1", json.loads(docs.body)
    sealer, update, jwk = docs.sealer, docs.update, docs.public_jwk
    return {
        "verify": lambda: webhooks.verify(secrets, docs.headers, docs.body, now=datetime.now(UTC)),
        "validate": lambda: agency_event_adapter.validate_python(parsed),
        "seal_unseal": lambda: sealer.unseal(sealer.seal(update, context=context), context=context),
        "jwe": lambda: envelopes.encrypt_for(jwk, docs.rendered, content_type=docs.media_type),
        "sign": lambda: webhooks.sign(secrets, "dlv_budget_1", datetime.now(UTC), docs.jwe),
        "render": lambda: render("generic", update),
    }


@contextmanager
def _committing(work: Path) -> Iterator[Callable[[], None]]:
    """One commit of a ~600-byte row per call, through Core on the hub's SQLite engine."""
    engine = make_engine(f"sqlite:///{work / 'budget.sqlite3'}")
    table = Table("budget_commit", MetaData(), Column("id", Integer, primary_key=True),
                  Column("tag", String(64)), Column("body", LargeBinary))  # fmt: skip
    table.create(engine)
    statement, row = insert(table), {"tag": "budget", "body": b"x" * 600}

    def commit() -> None:
        with engine.begin() as conn:
            conn.execute(statement, row)

    try:
        yield commit
    finally:
        engine.dispose()


@contextmanager
def _bus() -> Iterator[Callable[[], None]]:
    """Publish one message as the relay does; consume and ack it as a worker does."""
    topology = Topology(f"budget{os.getpid()}x{time.monotonic_ns()}", 1)
    publisher = Publisher(lambda: broker_connection("memory://", timeout=5), topology)
    received = [0]

    def on_message(message: Any) -> None:
        message.decode()
        message.ack()
        received[0] += 1

    def publish_consume() -> None:
        expected = received[0] + 1
        publisher.publish("decide", message_id=f"m{expected}", routing_hint=_PLACEHOLDER_ID,
                          payload={"event_id": f"budget-{expected}"})  # fmt: skip
        while received[0] < expected:
            conn.drain_events(timeout=5)

    with broker_connection("memory://", timeout=5) as conn:
        topology.declare(conn)
        with Consumer(conn, queues=topology.queues_for("decide"), on_message=on_message,
                      accept=["json"], prefetch_count=16):  # fmt: skip
            try:
                yield publish_consume
            finally:
                publisher.close()


@contextmanager
def _posting(docs: _Documents, null_url: str | None, work: Path) -> Iterator[Callable[[], None]]:
    """One POST of the JWE with the delivery worker's client to a server that answers at once."""
    with ExitStack() as stack:
        if null_url is None:
            receiver = stack.enter_context(ReceiverProcess(free_port(), {}))
            null_url = f"http://127.0.0.1:{receiver.port}/null"
        client = stack.enter_context(guarded_client(stack_settings(work)))
        headers = webhooks.sign([docs.secret], "dlv_budget_1", datetime.now(UTC), docs.jwe)
        headers["content-type"] = JOSE_MEDIA_TYPE

        def post() -> None:  # as attempts.post_webhook, less its signature
            with client.stream("POST", null_url, content=docs.jwe, headers=headers) as answer:
                for _ in answer.iter_raw():
                    pass
            if answer.status_code != 200:
                raise RuntimeError(f"the budget's null server answered {answer.status_code}")

        yield post


def bare_http_rate(requests: int = 1000) -> float:
    """The bare-HTTP floor measured as the run measures it (when no rate is passed in)."""
    fake = {a.id: Registered(a.id, "con_budget", webhooks.new_secret()) for a in AGENCIES}
    workload = Workload(fake, [])

    def build(base_url: str) -> list[bytes]:
        return workload.requests(base_url, requests, path="/bare")

    with LoadGenerator() as load:
        found = floors.http_floor(load, build, concurrency=16, max_seconds=20)
    return float(found["rate"])


def measure(
    *,
    http_rate: float | None = None,
    receiver_rate: float | None = None,
    client_rate: float | None = None,
    commit_rate: float | None = None,
    rounds: int = 7,
    round_seconds: float = 0.05,
    null_url: str | None = None,
) -> dict[str, Any]:
    """Every part's CPU, the minimum per event, its ceilings, and that against the goals.

    ``http_rate`` is the bare-HTTP floor's rate, measured here only when not given; the other
    rates (receivers, load generator, commit floor) are used when known. ``null_url``: a
    loopback server that answers at once (else one is started in a process of its own).
    """
    if rounds < 1 or round_seconds <= 0 or (http_rate is not None and http_rate <= 0):
        raise ValueError("measure needs rounds >= 1, round_seconds > 0 and a positive http_rate")
    source = "bare-HTTP floor" if http_rate is not None else "bare-HTTP floor, measured here"
    http_rate = http_rate if http_rate is not None else bare_http_rate()
    docs = _Documents()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eh-budget-")))
        ops = {**_in_memory_ops(docs), "commit": stack.enter_context(_committing(work)),
               "publish_consume": stack.enter_context(_bus()),
               "post": stack.enter_context(_posting(docs, null_url, work))}  # fmt: skip
        timed = {n: _cpu_ms(op, rounds=rounds, round_seconds=round_seconds)
                 for n, op in ops.items()}  # fmt: skip
    timed["http"] = {"cpu_ms": round(1000 / http_rate, 4), "from": source}
    parts = {name: {**timed[name], "per_event": _per_event(name), "what": what}
             for name, what in PARTS.items()}  # fmt: skip
    sizes = {"inbound_bytes": len(docs.body), "update_bytes": len(docs.rendered),
             "jwe_bytes": len(docs.jwe), "row_bytes": 600}  # fmt: skip
    rates = {"http": http_rate, "receiver": receiver_rate, "client": client_rate,
             "commit": commit_rate}  # fmt: skip
    intake = sum(parts[name]["cpu_ms"] for name in _INTAKE)
    delivery = sum(parts[name]["cpu_ms"] for name in _DELIVERY)
    found: dict[str, Any] = {
        "method": f"thread CPU per call, median of {rounds} rounds after a warm-up round",
        "parts": parts,
        "not_counted": {"render": {**timed["render"], "what": "render the update (generic)"}},
        "sizes": sizes,
        "cores": os.cpu_count() or 1,
        "rates": rates,
        "deliveries": DELIVERIES,
        # the receivers' CPU per delivery and the load generator's per request, from their
        # floors (each keeps one process busy, so its time per item is about its CPU)
        "others_ms": {
            "receiver_per_delivery": round(1000 / receiver_rate, 4) if receiver_rate else None,
            "client_per_request": round(1000 / client_rate, 4) if client_rate else 0.0,
        },
        "intake_ms": round(intake, 4),
        "delivery_ms": round(delivery, 4),
        "event_ms": round(intake + DELIVERIES * delivery, 4),
    }
    found["ceilings"] = _ceilings(found)
    found["goals"] = judge_budget(found)
    return found


def _per_event(part: str) -> int:
    return _INTAKE.count(part) + DELIVERIES * _DELIVERY.count(part)


def _ceilings(found: dict[str, Any]) -> dict[str, float | None]:
    """Events (and intakes) per second the minimum allows on one core and on every core;
    for whole events also sharing the cores with the receivers and the load generator."""
    event, intake, cores = found["event_ms"], found["intake_ms"], found["cores"]
    others = found["others_ms"]
    receiver, client = others["receiver_per_delivery"], others["client_per_request"]
    shared = None if receiver is None else cores * 1000 / (event + DELIVERIES * receiver + client)
    return {
        "events_one_core": round(1000 / event, 1),
        "events_all_cores": round(cores * 1000 / event, 1),
        "events_all_cores_with_receivers": None if shared is None else round(shared, 1),
        "intake_one_core": round(1000 / intake, 1),
        "intake_all_cores": round(cores * 1000 / intake, 1),
    }
