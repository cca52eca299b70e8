"""g. Poison on the bus (a private RabbitMQ node): malformed messages and a message that keeps
failing. Each must end in ``{prefix}.dead`` (the dead-letter exchange), never silently dropped,
while the hub keeps working; duplicated decide messages change nothing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Producer

from gateway.bus.consumer import TransientError, Worker
from gateway.bus.publisher import Publisher, broker_connection
from gateway.bus.topology import DEFAULT_DELIVERY_LIMIT, Topology
from tests.support.report import Scenario
from tests.support.rig import Rig, running_rig
from tests.support.services import PrivateRabbit

pytestmark = pytest.mark.reliability

PICKLE = b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00\x8c\x02hi\x94."
POISON: list[tuple[str, str, bytes, str, str | None]] = [
    # what, routing key, body, content type, message id
    ("not JSON", "0", b"{not json", "application/json", "poison-json"),
    ("JSON, not an object", "1", b"[1, 2]", "application/json", "poison-list"),
    ("no message id", "2", b'{"escalation_id": "x"}', "application/json", None),
    ("pickle", "3", PICKLE, "application/x-python-serialize", "poison-pickle"),
    ("unknown escalation", "0", b'{"escalation_id": "no-such"}', "application/json", "p-unknown"),
    ("escalation id not a string", "1", b'{"escalation_id": 7}', "application/json", "p-int"),
    ("unknown delivery", "deliver", b'{"delivery_id": "no-such"}', "application/json", "p-del"),
]


@contextmanager
def _channel(url: str) -> Iterator[Any]:
    with Connection(url, connect_timeout=5) as conn:
        yield conn.default_channel


def _publish_raw(
    url: str, prefix: str, routing_key: str, body: bytes, ctype: str, mid: str | None
) -> None:
    with _channel(url) as channel:
        properties = {"message_id": mid} if mid else {}
        Producer(channel).publish(
            body,
            exchange=f"{prefix}.events",
            routing_key=routing_key,
            content_type=ctype,
            content_encoding="binary",
            delivery_mode=2,
            **properties,
        )


def _drain_dead(url: str, prefix: str, expected: int, timeout: float) -> list[Message]:
    """Take messages from ``{prefix}.dead`` until ``expected`` arrived or the timeout passed."""
    taken: list[Message] = []
    end = time.monotonic() + timeout
    with _channel(url) as channel:
        dead = Queue(f"{prefix}.dead", no_declare=True).bind(channel)
        while len(taken) < expected and time.monotonic() < end:
            message = dead.get(no_ack=True)
            if message is None:
                time.sleep(0.1)
                continue
            taken.append(message)
    return taken


def _death(message: Message) -> tuple[str, str]:
    headers = message.headers or {}
    return str(headers.get("x-first-death-reason")), str(headers.get("x-first-death-queue"))


def test_malformed_messages_are_dead_lettered_and_the_hub_keeps_working(
    workdir: Path, private_hub_env: dict[str, str], rabbit: PrivateRabbit, scenario: Scenario
) -> None:
    scenario.title = "g1. Malformed and duplicated messages published onto a running hub's queues"
    scenario.setup = (
        "one `escalation-hub serve` process (every role) on a private PostgreSQL and a private "
        "RabbitMQ node; messages published straight to its exchange with kombu."
    )
    prefix = private_hub_env["EH_BUS_PREFIX"]
    with running_rig(workdir, private_hub_env) as rig:
        before = rig.stream(escalations=2, actions=1)
        before.start()
        assert before.join(120)
        assert not rig.complete(timeout=60, settle=0).lost
        for _what, key, body, ctype, mid in POISON:
            _publish_raw(rabbit.url, prefix, key, body, ctype, mid)
        duplicates = _duplicate_decides(rig, rabbit.url, prefix)
        dead = _drain_dead(rabbit.url, prefix, len(POISON), timeout=60)
        after = rig.stream(escalations=2, actions=1)
        after.start()
        assert after.join(120)
        report = rig.complete(timeout=60)
        alive = rig.hubs["hub"].alive
    deaths = sorted(_death(m) for m in dead)
    scenario.step(f"Sent {before.total} events; all delivered.")
    scenario.step(
        "Published " + ", ".join(p[0] for p in POISON) + f"; and {duplicates} copies of "
        "already-handled decide messages."
    )
    scenario.step(f"Sent {after.total} more events.")
    scenario.figures.update(report.figures())
    scenario.figures["poison messages published"] = len(POISON)
    scenario.figures["found in the dead-letter queue"] = len(dead)
    scenario.figures["dead-letter reasons"] = ", ".join(sorted({d[0] for d in deaths}))
    scenario.figures["duplicated decide messages published"] = duplicates
    assert not before.failures
    assert not after.failures
    assert len(dead) == len(POISON), deaths
    assert {d[0] for d in deaths} == {"rejected"}
    assert alive, "the hub process died"
    assert report.clean, report.describe()


def _duplicate_decides(rig: Rig, url: str, prefix: str) -> int:
    """Publish again the decide message of every accepted event: nothing new to decide."""
    topology = Topology(prefix, 4, amqp=True)
    publisher = Publisher(lambda: broker_connection(url, timeout=5), topology)
    published = 0
    try:
        for entry in rig.ledger.accepted:
            publisher.publish(
                "decide",
                message_id=f"decide:{entry.escalation_id}:{entry.sequence}",
                routing_hint=entry.escalation_id,
                payload={"escalation_id": entry.escalation_id},
            )
            published += 1
    finally:
        publisher.close()
    return published


def test_a_message_that_keeps_failing_transiently_is_dead_lettered_at_the_delivery_limit(
    rabbit: PrivateRabbit, scenario: Scenario
) -> None:
    scenario.title = "g2. A decide message whose handler always fails transiently"
    scenario.setup = (
        "the hub's own consumer (`gateway.bus.consumer.Worker`) and topology on a private "
        "RabbitMQ node (durable quorum queues, delivery limit "
        f"{DEFAULT_DELIVERY_LIMIT}), with a handler that always raises TransientError."
    )
    prefix = f"relt{uuid.uuid4().hex[:8]}"
    topology = Topology(prefix, 1, amqp=True)
    calls: list[str] = []
    publisher = Publisher(lambda: broker_connection(rabbit.url, timeout=5), topology)
    try:
        with _failing_worker(rabbit.url, topology, calls):
            publisher.publish(
                "decide", message_id="fails", routing_hint="0", payload={"escalation_id": "e"}
            )
            dead = _drain_dead(rabbit.url, prefix, 1, timeout=60)
    finally:
        publisher.close()
    scenario.step("Published one decide message through the hub's confirmed publisher.")
    scenario.figures["times the handler was called"] = len(calls)
    scenario.figures["found in the dead-letter queue"] = len(dead)
    scenario.figures["dead-letter reason, queue"] = ", ".join(_death(dead[0])) if dead else "-"
    assert len(dead) == 1, "dead-lettered at the limit, never dropped"
    assert _death(dead[0]) == ("delivery_limit", f"{prefix}.decide.0")
    assert len(calls) == DEFAULT_DELIVERY_LIMIT + 1


@contextmanager
def _failing_worker(url: str, topology: Topology, calls: list[str]) -> Iterator[Worker]:
    """The hub's Worker on the decide queue, its handler always failing transiently."""

    def always_later(message_id: str, payload: dict[str, Any]) -> None:
        calls.append(message_id)
        raise TransientError("the database is down (simulated)")

    conn = broker_connection(url, timeout=5)
    worker = Worker(conn, topology, "decide", always_later, name="router", backoff_max=0.01)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(30), "the worker did not start consuming"
        yield worker
    finally:
        worker.stop()
        thread.join(10)
        conn.release()
