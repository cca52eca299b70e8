# (kombu leaves most functions unannotated; see gateway/bus/topology.py)
"""The bus on the real RabbitMQ: quorum queues, dead letters, confirms, single active consumer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.entity import Queue

from gateway.bus import (
    BusUnavailable,
    PoisonMessage,
    Publisher,
    Topology,
    Worker,
    broker_connection,
)

Received = list[tuple[str, str]]


def arguments(queue: Queue) -> dict[str, Any]:
    """A queue's declared arguments (kombu sets the attribute dynamically)."""
    return dict(queue.queue_arguments or {})  # type: ignore[attr-defined]


def wait_until(predicate: Callable[[], bool], *, guard: float = 15.0) -> None:
    """Wait for a condition; the guard only stops a broken test from hanging."""
    deadline = time.monotonic() + guard
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the hang guard")
        time.sleep(0.01)


@pytest.fixture
def topology(amqp_url: str, bus_prefix: str) -> Iterator[Topology]:
    """A one-partition topology, declared, and deleted from the broker afterwards."""
    topology = Topology(bus_prefix, 1, amqp=True, delivery_limit=3)
    with Connection(amqp_url) as connection:
        topology.declare(connection)
    yield topology
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        for queue in [*topology.all_queues(), topology.dead_letter_queue]:
            channel.queue_delete(queue.name)
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            channel.exchange_delete(exchange.name)


@pytest.fixture
def publisher(amqp_url: str, topology: Topology) -> Iterator[Publisher]:
    publisher = Publisher(lambda: broker_connection(amqp_url, timeout=5), topology)
    yield publisher
    publisher.close()


@pytest.fixture
def workers(amqp_url: str, topology: Topology) -> Iterator[Callable[..., Worker]]:
    started: list[tuple[Worker, threading.Thread]] = []

    def start(topic: str, handler: Callable[[str, dict[str, Any]], None], **kw: Any) -> Worker:
        connection = broker_connection(amqp_url, timeout=5)
        worker = Worker(connection, topology, topic, handler, **{"name": "w", **kw})
        started.append((worker, worker.start_in_thread()))
        assert worker.ready.wait(15)
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "a worker did not stop when asked"


def ready_count(amqp_url: str, queue: str) -> int:
    with Connection(amqp_url) as connection:
        return int(connection.channel().queue_declare(queue, passive=True).message_count)


def dead_letters(amqp_url: str, topology: Topology) -> list[Any]:
    with Connection(amqp_url) as connection:
        queue = topology.dead_letter_queue.bind(connection.channel())
        messages = []
        while (message := queue.get(no_ack=True)) is not None:
            messages.append(message)
        return messages


def collect_dead(amqp_url: str, topology: Topology, sink: list[Any]) -> bool:
    """Move the dead letters into ``sink``; whether there are any."""
    sink.extend(dead_letters(amqp_url, topology))
    return bool(sink)


def redeclare_error(amqp_url: str, name: str, queue_arguments: dict[str, Any]) -> str:
    """The broker's answer to declaring an existing queue with other arguments."""
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        try:
            channel.queue_declare(name, durable=True, auto_delete=False, arguments=queue_arguments)
        except connection.channel_errors as exc:
            return str(exc)
        return "accepted"


@pytest.mark.rabbitmq
def test_work_queues_are_quorum_queues_with_a_delivery_limit_and_dead_lettering(
    amqp_url: str, topology: Topology
) -> None:
    deliver = topology.queues_for("deliver")[0]
    declared = arguments(deliver)

    assert redeclare_error(amqp_url, deliver.name, declared) == "accepted"
    classic = redeclare_error(amqp_url, deliver.name, {**declared, "x-queue-type": "classic"})
    assert "inequivalent arg 'x-queue-type'" in classic
    assert "current is 'quorum'" in classic
    limit = redeclare_error(amqp_url, deliver.name, {**declared, "x-delivery-limit": 99})
    assert "current is '3'" in limit
    dlx = redeclare_error(amqp_url, deliver.name, {**declared, "x-dead-letter-exchange": "x"})
    assert f"current is '{topology.prefix}.dlx'" in dlx


@pytest.mark.rabbitmq
def test_decide_queues_have_a_single_active_consumer(amqp_url: str, topology: Topology) -> None:
    decide = topology.queues_for("decide")[0]
    without = {k: v for k, v in arguments(decide).items() if k != "x-single-active-consumer"}

    answer = redeclare_error(amqp_url, decide.name, without)

    assert "inequivalent arg 'x-single-active-consumer'" in answer
    assert "current is the value 'true'" in answer


@pytest.mark.rabbitmq
def test_a_rejected_poison_message_lands_in_the_dead_letter_queue(
    amqp_url: str, topology: Topology, publisher: Publisher, workers: Callable[..., Worker]
) -> None:
    def handler(message_id: str, payload: dict[str, Any]) -> None:
        raise PoisonMessage("refers to no escalation")

    workers("deliver", handler)
    publisher.publish("deliver", message_id="poison-1", routing_hint="", payload={"n": 1})

    dead: list[Any] = []
    wait_until(lambda: collect_dead(amqp_url, topology, dead))
    assert dead[0].properties["message_id"] == "poison-1"
    assert dead[0].headers["x-first-death-reason"] == "rejected"
    assert dead[0].payload == {"n": 1}


@pytest.mark.rabbitmq
def test_a_message_returned_more_often_than_the_delivery_limit_is_dead_lettered(
    amqp_url: str, topology: Topology, publisher: Publisher
) -> None:
    publisher.publish("deliver", message_id="loop-1", routing_hint="", payload={})
    counts: list[int | None] = []

    with Connection(amqp_url) as connection:
        queue = topology.queues_for("deliver")[0].bind(connection.channel())
        while len(counts) <= topology.delivery_limit:
            message = queue.get()
            if message is None:
                break
            counts.append(message.headers.get("x-delivery-count"))
            message.requeue()

    dead: list[Any] = []
    wait_until(lambda: collect_dead(amqp_url, topology, dead))
    assert counts[1:] == [1, 2, 3]  # returned three times (the limit), then dead-lettered
    assert dead[0].headers["x-first-death-reason"] == "delivery_limit"


@pytest.mark.rabbitmq
def test_a_message_is_not_acked_while_its_handler_runs_and_is_acked_after(
    amqp_url: str, topology: Topology, publisher: Publisher, workers: Callable[..., Worker]
) -> None:
    entered, release = threading.Event(), threading.Event()
    handled: list[str] = []

    def handler(message_id: str, payload: dict[str, Any]) -> None:
        entered.set()
        assert release.wait(15)
        handled.append(message_id)

    worker = workers("deliver", handler, prefetch=1)
    queue = topology.queues_for("deliver")[0].name
    publisher.publish("deliver", message_id="a", routing_hint="", payload={})
    publisher.publish("deliver", message_id="b", routing_hint="", payload={})
    assert entered.wait(15)

    time.sleep(0.2)  # an early ack would free the prefetch window and "b" would be sent out
    assert ready_count(amqp_url, queue) == 1
    release.set()
    wait_until(lambda: handled == ["a", "b"])
    worker.stop()
    wait_until(lambda: not worker.ready.is_set())
    assert ready_count(amqp_url, queue) == 0


@pytest.mark.rabbitmq
def test_only_one_of_two_consumers_of_a_decide_partition_is_active(
    publisher: Publisher, workers: Callable[..., Worker]
) -> None:
    received: Received = []

    def handler_of(name: str) -> Callable[[str, dict[str, Any]], None]:
        return lambda message_id, payload: received.append((name, message_id))

    first = workers("decide", handler_of("first"), name="first", consume_from=[0])
    workers("decide", handler_of("second"), name="second", consume_from=[0])
    for n in range(5):
        publisher.publish("decide", message_id=f"m{n}", routing_hint=f"esc-{n}", payload={})
    wait_until(lambda: len(received) == 5)

    first.stop()
    wait_until(lambda: not first.ready.is_set())
    for n in range(5, 8):
        publisher.publish("decide", message_id=f"m{n}", routing_hint=f"esc-{n}", payload={})
    wait_until(lambda: len(received) == 8)

    assert received[:5] == [("first", f"m{n}") for n in range(5)]
    assert received[5:] == [("second", f"m{n}") for n in range(5, 8)]


@pytest.mark.rabbitmq
def test_a_message_the_broker_refuses_raises_instead_of_counting_as_published(
    amqp_url: str, topology: Topology, publisher: Publisher
) -> None:
    publisher.publish("deliver", message_id="ok", routing_hint="", payload={})
    deliver = topology.queues_for("deliver")[0]
    full = {**arguments(deliver), "x-max-length": 0, "x-overflow": "reject-publish"}
    with Connection(amqp_url) as connection:
        channel = connection.channel()
        channel.queue_delete(deliver.name)
        channel.queue_declare(deliver.name, durable=True, auto_delete=False, arguments=full)
        channel.queue_bind(deliver.name, topology.exchange.name, "deliver")

    def publish_three() -> None:  # a quorum queue may accept one message past its limit
        for n in range(3):
            publisher.publish("deliver", message_id=f"refused-{n}", routing_hint="", payload={})

    with pytest.raises(BusUnavailable, match="stays unpublished"):
        publish_three()

    assert ready_count(amqp_url, deliver.name) <= 1


@pytest.mark.rabbitmq
def test_a_publisher_reconnects_after_closing_an_idle_connection(
    amqp_url: str, topology: Topology
) -> None:
    publisher = Publisher(
        lambda: broker_connection(amqp_url, timeout=5), topology, idle_timeout=0.0
    )
    publisher.publish("deliver", message_id="before", routing_hint="", payload={})
    time.sleep(0.01)
    publisher.keepalive()
    publisher.publish("deliver", message_id="after", routing_hint="", payload={})
    publisher.close()

    assert ready_count(amqp_url, topology.queues_for("deliver")[0].name) == 2


def test_publishing_to_an_unreachable_broker_raises_within_the_bounded_retries() -> None:
    topology = Topology("unreachable", 1, amqp=True)
    url = "amqp://guest:guest@127.0.0.1:1//"
    publisher = Publisher(lambda: broker_connection(url, timeout=2), topology, timeout=2)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            publisher.publish("deliver", message_id="m", routing_hint="", payload={})
        except BusUnavailable as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(60)  # a hang guard, far beyond the retry policy's few seconds

    assert not thread.is_alive(), "publish hung on an unreachable broker"
    assert len(outcome) == 1
    assert "EH_BROKER_URL" in str(outcome[0])


def test_a_worker_that_cannot_reach_the_broker_still_stops_when_asked() -> None:
    topology = Topology("unreachable", 1, amqp=True)
    connection = broker_connection("amqp://guest:guest@127.0.0.1:1//", timeout=2)
    worker = Worker(connection, topology, "deliver", lambda message_id, payload: None, name="w")
    thread = worker.start_in_thread()
    time.sleep(0.2)  # let it fail to connect and start retrying

    worker.stop()
    thread.join(30)  # a hang guard: the reconnect loop checks for a stop every second

    assert not thread.is_alive(), "the worker kept retrying the connection after stop()"
    assert not worker.ready.is_set()
