"""The broker floor (raw kombu publish and consume) and removing a run's queues afterwards.

The floor publishes ``count`` small JSON messages one at a time, persistent, with publisher
confirms on AMQP (``gateway.bus.publisher.broker_connection`` turns them on), into one
queue declared like the hub's ``deliver`` queue (a quorum queue with a dead-letter exchange
on RabbitMQ), while a kombu ``Consumer`` on another connection acks each one. The rate is
messages over the time from the first publish to the last ack.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kombu.entity import Exchange
from kombu.messaging import Consumer, Producer

from gateway.bench.stats import rate
from gateway.bus.publisher import broker_connection
from gateway.bus.topology import Topology, is_amqp_url

__all__ = ["broker_floor", "delete_queues"]


def broker_floor(broker_url: str, *, prefix: str, count: int, max_seconds: float) -> dict[str, Any]:
    """Messages per second through the broker: confirmed publish, consume and ack."""
    topology = Topology(prefix, 1, amqp=is_amqp_url(broker_url))
    queue = topology.queues_for("deliver")[0]
    received: list[int] = []
    target = [count]  # lowered to what was published if publishing ran out of time
    ready, finished = threading.Event(), threading.Event()

    def consume() -> None:
        with broker_connection(broker_url, timeout=5) as conn:
            topology.declare(conn)

            def on_message(body: Any, message: Any) -> None:
                message.ack()
                received.append(time.monotonic_ns())
                if len(received) >= target[0]:
                    finished.set()

            with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"],
                          prefetch_count=32):  # fmt: skip
                ready.set()
                stop_at = time.monotonic() + max_seconds + 30
                while not finished.is_set() and time.monotonic() < stop_at:
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        continue

    thread = threading.Thread(target=consume, name="eh-bench-consume", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"the broker floor's consumer could not connect to {prefix}.deliver")
    published, first, last_publish = _publish(broker_url, topology, count, max_seconds)
    target[0] = published
    if len(received) >= published:
        finished.set()
    thread.join(timeout=max_seconds + 40)
    seconds = ((received[-1] if received else time.monotonic_ns()) - first) / 1e9
    publish_seconds = (last_publish - first) / 1e9
    return {
        "published": published,
        "consumed": len(received),
        "seconds": round(seconds, 3),
        "publish_rate": rate(published, publish_seconds),
        "rate": rate(len(received), seconds),
        "confirms": topology.amqp,
    }


def _publish(url: str, topology: Topology, count: int, max_seconds: float) -> tuple[int, int, int]:
    with broker_connection(url, timeout=5) as conn:
        producer = Producer(conn, exchange=topology.exchange, auto_declare=False)
        first = time.monotonic_ns()
        stop_at = time.monotonic() + max_seconds
        published = 0
        for index in range(count):
            if time.monotonic() > stop_at:
                break
            producer.publish(
                {"delivery_id": f"floor-{index}"},
                exchange=topology.exchange,
                routing_key="deliver",
                serializer="json",
                delivery_mode=2,
                message_id=f"floor:{index}",
                mandatory=topology.amqp,
            )
            published += 1
        return published, first, time.monotonic_ns()


def delete_queues(broker_url: str, prefix: str, partitions: int) -> int:
    """Delete a run's queues and exchanges (AMQP only: memory queues end with the process)."""
    if not is_amqp_url(broker_url):
        return 0
    topology = Topology(prefix, partitions, amqp=True)
    deleted = 0
    with broker_connection(broker_url, timeout=5) as conn:
        channel = conn.default_channel
        for queue in [topology.dead_letter_queue, *topology.all_queues()]:
            queue.bind(channel).delete()
            deleted += 1
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            Exchange(exchange.name).bind(channel).delete()
    return deleted
