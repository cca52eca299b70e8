# (kombu leaves most functions unannotated; see gateway/bus/topology.py)
"""The bus on kombu's in-process memory transport (the embedded default), end to end."""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Producer
from sqlalchemy.exc import OperationalError

from gateway.bus import (
    PoisonMessage,
    Publisher,
    Topology,
    TransientError,
    UnknownTopic,
    Worker,
    broker_connection,
    partition_for,
)

MEMORY = "memory://"
Received = list[tuple[str, dict[str, Any]]]


def arguments(queue: Queue) -> dict[str, Any]:
    """A queue's declared arguments (kombu sets the attribute dynamically)."""
    return dict(queue.queue_arguments or {})  # type: ignore[attr-defined]


def wait_until(predicate: Callable[[], bool], *, guard: float = 10.0) -> None:
    """Wait for a condition; the guard only stops a broken test from hanging."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the hang guard")
        time.sleep(0.005)


def drain(topology: Topology, queue_name: str) -> list[Any]:
    """Every message now in a queue, removed from it."""
    queue = next(
        q for q in [*topology.all_queues(), topology.dead_letter_queue] if q.name == queue_name
    )
    messages = []
    with broker_connection(MEMORY, timeout=5) as connection:
        bound = queue.bind(connection.default_channel)
        bound.declare()
        while (message := bound.get(no_ack=True)) is not None:
            messages.append(message)
    return messages


def drain_into(topology: Topology, sink: list[Any]) -> list[Any]:
    """Move the dead letters into ``sink``; return it."""
    sink.extend(drain(topology, f"{topology.prefix}.dead"))
    return sink


@pytest.fixture
def topology(bus_prefix: str) -> Topology:
    return Topology(bus_prefix, 4)


@pytest.fixture
def publisher(topology: Topology) -> Iterator[Publisher]:
    publisher = Publisher(lambda: broker_connection(MEMORY, timeout=5), topology)
    yield publisher
    publisher.close()


@pytest.fixture
def run_worker(topology: Topology) -> Iterator[Callable[..., Worker]]:
    started: list[tuple[Worker, threading.Thread]] = []

    def run(topic: str, handler: Callable[[str, dict[str, Any]], None], **kw: Any) -> Worker:
        worker = Worker(
            broker_connection(MEMORY, timeout=5), topology, topic, handler, name="t", **kw
        )
        started.append((worker, worker.start_in_thread()))
        assert worker.ready.wait(10)
        return worker

    yield run
    for worker, thread in started:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive(), "a worker did not stop when asked"


def recorder(received: Received) -> Callable[[str, dict[str, Any]], None]:
    return lambda message_id, payload: received.append((message_id, payload))


def test_a_published_message_reaches_the_handler_with_its_id_and_payload(
    publisher: Publisher, run_worker: Callable[..., Worker]
) -> None:
    received: Received = []
    run_worker("deliver", recorder(received))

    publisher.publish("deliver", message_id="m-1", routing_hint="", payload={"delivery": "d-1"})

    wait_until(lambda: len(received) == 1)
    assert received == [("m-1", {"delivery": "d-1"})]


def test_a_message_is_persistent_json_carrying_its_message_id(
    publisher: Publisher, topology: Topology
) -> None:
    publisher.publish("deliver", message_id="m-2", routing_hint="", payload={"n": 2})

    [message] = drain(topology, f"{topology.prefix}.deliver")
    assert message.content_type == "application/json"
    assert message.properties["message_id"] == "m-2"
    assert message.properties["delivery_mode"] == 2
    assert message.payload == {"n": 2}


def test_a_transient_failure_is_retried_until_the_handler_returns(
    publisher: Publisher, run_worker: Callable[..., Worker]
) -> None:
    calls: list[str] = []

    def flaky(message_id: str, payload: dict[str, Any]) -> None:
        calls.append(message_id)
        if len(calls) == 1:
            raise TransientError("database unavailable")
        if len(calls) == 2:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    run_worker("deliver", flaky, backoff_initial=0.01)
    publisher.publish("deliver", message_id="m-4", routing_hint="", payload={})

    wait_until(lambda: len(calls) == 3)
    time.sleep(0.1)  # a wrongly requeued message would come back within this time
    assert calls == ["m-4", "m-4", "m-4"]


def test_a_poison_message_is_dead_lettered_and_the_next_message_still_handled(
    publisher: Publisher, topology: Topology, run_worker: Callable[..., Worker]
) -> None:
    received: Received = []

    def handler(message_id: str, payload: dict[str, Any]) -> None:
        if payload.get("poison"):
            raise PoisonMessage("refers to no escalation")
        received.append((message_id, payload))

    run_worker("deliver", handler)
    publisher.publish("deliver", message_id="bad", routing_hint="", payload={"poison": True})
    publisher.publish("deliver", message_id="good", routing_hint="", payload={})

    wait_until(lambda: len(received) == 1)
    [dead] = drain(topology, f"{topology.prefix}.dead")
    assert dead.properties["message_id"] == "bad"
    assert dead.headers["x-eh-dead-reason"] == "poison"
    assert dead.payload == {"poison": True}
    assert received == [("good", {})]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"[1, 2]", "application/json", "not-an-object"),
        (b"{not json", "application/json", "undecodable"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "undecodable"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_dead_lettered_without_reaching_the_handler(
    topology: Topology,
    run_worker: Callable[..., Worker],
    body: bytes,
    content_type: str,
    reason: str,
) -> None:
    received: Received = []
    run_worker("deliver", recorder(received))

    with broker_connection(MEMORY, timeout=5) as connection:
        Producer(connection.default_channel).publish(
            body,
            exchange=topology.exchange,
            routing_key="deliver",
            content_type=content_type,
            content_encoding="binary",
            message_id="raw",
        )

    dead: list[Any] = []
    wait_until(lambda: bool(drain_into(topology, dead)))
    assert dead[0].headers["x-eh-dead-reason"] == reason
    assert received == []


def test_a_message_without_a_message_id_is_dead_lettered(
    topology: Topology, run_worker: Callable[..., Worker]
) -> None:
    received: Received = []
    run_worker("deliver", recorder(received))

    with broker_connection(MEMORY, timeout=5) as connection:
        Producer(connection.default_channel).publish(
            {"x": 1}, exchange=topology.exchange, routing_key="deliver", serializer="json"
        )

    dead: list[Any] = []
    wait_until(lambda: bool(drain_into(topology, dead)))
    assert dead[0].headers["x-eh-dead-reason"] == "no-message-id"
    assert received == []


def test_a_handler_bug_is_dead_lettered_and_logged_without_the_error_text(
    publisher: Publisher,
    topology: Topology,
    run_worker: Callable[..., Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def buggy(message_id: str, payload: dict[str, Any]) -> None:
        raise ValueError(f"child {payload['child']} could not be matched")

    caplog.set_level(logging.WARNING, logger="gateway.bus")
    run_worker("deliver", buggy)
    publisher.publish(
        "deliver", message_id="m-bug", routing_hint="", payload={"child": "Jane Example"}
    )

    dead: list[Any] = []
    wait_until(lambda: bool(drain_into(topology, dead)))
    assert dead[0].headers["x-eh-dead-reason"] == "handler-error"
    [failure] = [r for r in caplog.records if r.getMessage() == "bus.handler_failed"]
    assert failure.__dict__["error"] == "ValueError"
    assert failure.__dict__["message_id"] == "m-bug"
    assert "buggy" in failure.__dict__["frames"]
    assert not any("Jane" in repr(record.__dict__) for record in caplog.records)


def test_an_escalation_always_maps_to_the_same_partition() -> None:
    assert [partition_for(f"esc-{n}", 4) for n in range(6)] == [
        zlib.crc32(f"esc-{n}".encode()) % 4 for n in range(6)
    ]
    assert partition_for("esc-0", 4) == partition_for("esc-0", 4)
    assert {partition_for(f"esc-{n}", 4) for n in range(200)} == {0, 1, 2, 3}


def test_decide_messages_reach_only_the_partition_queue_of_their_escalation(
    publisher: Publisher, topology: Topology, run_worker: Callable[..., Worker]
) -> None:
    escalations = [f"esc-{n}" for n in range(20)]
    mine = [e for e in escalations if partition_for(e, 4) == 2]
    received: Received = []
    run_worker("decide", recorder(received), consume_from=[2])

    for n, escalation in enumerate(escalations):
        publisher.publish(
            "decide", message_id=f"m{n}", routing_hint=escalation, payload={"e": escalation}
        )

    wait_until(lambda: len(received) == len(mine))
    assert [payload["e"] for _, payload in received] == mine
    for n in (0, 1, 3):
        queue = f"{topology.prefix}.decide.{n}"
        assert {m.payload["e"] for m in drain(topology, queue)} == {
            e for e in escalations if partition_for(e, 4) == n
        }


def test_a_decide_hint_that_is_already_a_partition_number_is_kept(topology: Topology) -> None:
    assert [topology.routing_key("decide", str(n)) for n in range(4)] == ["0", "1", "2", "3"]
    assert topology.routing_key("decide", "esc-7") == str(partition_for("esc-7", 4))
    assert topology.routing_key("decide", "9") == str(partition_for("9", 4))
    assert topology.routing_key("deliver", "anything") == "deliver"


def test_an_unknown_topic_is_refused_with_the_known_topics_named(publisher: Publisher) -> None:
    with pytest.raises(UnknownTopic, match=r"decide, deliver, notify"):
        publisher.publish("gossip", message_id="m", routing_hint="", payload={})


def test_consuming_a_partition_that_does_not_exist_is_refused(topology: Topology) -> None:
    with pytest.raises(ValueError, match=r"0\.\.3"):
        Worker(Connection(MEMORY), topology, "decide", recorder([]), name="t", consume_from=[4])


def test_quorum_arguments_are_declared_on_amqp_only(bus_prefix: str) -> None:
    memory = Topology(bus_prefix, 2)
    amqp = Topology(bus_prefix, 2, amqp=True, delivery_limit=7)

    assert all(not arguments(q) for q in [*memory.all_queues(), memory.dead_letter_queue])
    decide = arguments(amqp.queues_for("decide")[0])
    deliver = arguments(amqp.queues_for("deliver")[0])
    assert decide == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": f"{bus_prefix}.dlx",
        "x-single-active-consumer": True,
    }
    assert "x-single-active-consumer" not in deliver
    assert arguments(amqp.dead_letter_queue) == {"x-queue-type": "quorum"}
