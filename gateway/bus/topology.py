# (kombu ships py.typed but leaves most functions unannotated; remove this line once
# pyproject.toml sets `untyped_calls_exclude = ["kombu"]` for mypy.)
"""Every exchange and queue of the bus, declared in one place for a prefix and partitions.

Names, for prefix ``eh`` and 4 partitions::

    eh.events  (direct)  --"0".."3"-->  eh.decide.0 .. eh.decide.3   one per router partition
                         --"deliver"->  eh.deliver
                         --"notify"-->  eh.notify
    eh.dlx     (fanout)  ------------>  eh.dead                      every key, dead letters

On AMQP (RabbitMQ) every queue is a durable quorum queue. Work queues carry
``x-delivery-limit`` and ``x-dead-letter-exchange``: a message returned more often than the
limit (a consumer crashing on it, or requeueing it) and a message rejected without requeue
both land in ``{prefix}.dead``. Dead lettering uses the quorum default strategy,
``at-most-once``: a dead letter is not confirmed by ``{prefix}.dead`` and can be lost if that
queue is unavailable at that moment; the database stays the truth (the event is stored and
undecided), so an operator can replay it. The ``decide`` queues are single-active-consumer:
several routers may consume one partition, one at a time, the others standing by.

On the in-process memory transport (embedded) the same names are plain queues: the quorum
arguments are AMQP-only and the memory transport cannot dead-letter (see ``consumer``).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from kombu.entity import Exchange, Queue

if TYPE_CHECKING:
    from kombu.connection import Connection

    from gateway.settings import Settings

__all__ = [
    "AMQP_SCHEMES",
    "DEFAULT_DELIVERY_LIMIT",
    "PARTITIONED_TOPICS",
    "TOPICS",
    "Topology",
    "UnknownTopic",
    "is_amqp_url",
    "partition_for",
]

PARTITIONED_TOPICS = frozenset({"decide"})
TOPICS = frozenset({"decide", "deliver", "notify"})
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
DEFAULT_DELIVERY_LIMIT = 20


class UnknownTopic(ValueError):
    """A topic the topology does not declare."""

    def __init__(self, topic: str) -> None:
        known = ", ".join(sorted(TOPICS))
        super().__init__(
            f"bus topic {topic!r} is not one of {known}; "
            "add it to TOPICS in gateway/bus/topology.py or fix the outbox row's topic"
        )
        self.topic = topic


def partition_for(escalation_id: str, partitions: int) -> int:
    """The stable partition of an escalation (CRC-32, the same in every process and release)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return zlib.crc32(escalation_id.encode("utf-8")) % partitions


def is_amqp_url(broker_url: str) -> bool:
    """Whether a kombu URL names an AMQP broker (quorum queues, confirms, dead lettering)."""
    return broker_url.startswith(AMQP_SCHEMES)


class Topology:
    """The exchanges, queues and routing keys of one hub installation."""

    def __init__(
        self,
        prefix: str,
        partitions: int,
        *,
        amqp: bool = False,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if delivery_limit < 1:
            raise ValueError(f"delivery_limit must be at least 1, got {delivery_limit}")
        self.prefix = prefix
        self.partitions = partitions
        self.amqp = amqp
        self.delivery_limit = delivery_limit
        self.exchange = Exchange(f"{prefix}.events", type="direct", durable=True)
        self.dead_letter_exchange = Exchange(f"{prefix}.dlx", type="fanout", durable=True)
        self.dead_letter_queue = Queue(
            f"{prefix}.dead",
            exchange=self.dead_letter_exchange,
            routing_key="",
            durable=True,
            queue_arguments=self._arguments(dead=True, single_active=False),
        )
        self._queues = {topic: self._build(topic) for topic in sorted(TOPICS)}

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        """The topology the settings describe (transport from ``broker_url``)."""
        return cls(
            settings.bus_prefix,
            settings.router_partitions,
            amqp=is_amqp_url(settings.broker_url),
        )

    @property
    def topics(self) -> frozenset[str]:
        return TOPICS

    def queues_for(self, topic: str, partitions: list[int] | None = None) -> list[Queue]:
        """The queues of a topic; for ``decide`` optionally only some partitions."""
        queues = self._queues.get(topic)
        if queues is None:
            raise UnknownTopic(topic)
        if partitions is None:
            return list(queues)
        if topic not in PARTITIONED_TOPICS:
            raise ValueError(f"topic {topic!r} is not partitioned; consume it without partitions")
        wrong = [n for n in partitions if not 0 <= n < self.partitions]
        if wrong or not partitions:
            raise ValueError(
                f"partitions {partitions} are not a non-empty subset of 0..{self.partitions - 1} "
                "(EH_ROUTER_PARTITIONS)"
            )
        return [queues[n] for n in sorted(set(partitions))]

    def routing_key(self, topic: str, key_hint: str) -> str:
        """The routing key of a message: for ``decide``, the partition of the escalation.

        ``key_hint`` is the escalation id, or a partition number already computed with
        ``partition_for`` (kept as it is while in range). Either way one escalation always
        gets the same key; the escalation id is the better hint, as it survives a change of
        ``EH_ROUTER_PARTITIONS`` while messages are pending.
        """
        if topic not in TOPICS:
            raise UnknownTopic(topic)
        if topic not in PARTITIONED_TOPICS:
            return topic
        if key_hint.isascii() and key_hint.isdigit() and int(key_hint) < self.partitions:
            return str(int(key_hint))
        return str(partition_for(key_hint, self.partitions))

    def declare(self, connection: Connection) -> None:
        """Declare every exchange, queue and binding (idempotent; connects if needed)."""
        channel = connection.default_channel
        for queue in [self.dead_letter_queue, *self.all_queues()]:
            queue.bind(channel).declare()

    def all_queues(self) -> list[Queue]:
        return [queue for topic in sorted(self._queues) for queue in self._queues[topic]]

    def _build(self, topic: str) -> list[Queue]:
        partitioned = topic in PARTITIONED_TOPICS
        if partitioned:
            pairs = [(f"{self.prefix}.{topic}.{n}", str(n)) for n in range(self.partitions)]
        else:
            pairs = [(f"{self.prefix}.{topic}", topic)]
        arguments = self._arguments(dead=False, single_active=partitioned)
        return [
            Queue(
                name,
                exchange=self.exchange,
                routing_key=key,
                durable=True,
                queue_arguments=arguments,
            )
            for name, key in pairs
        ]

    def _arguments(self, *, dead: bool, single_active: bool) -> dict[str, Any] | None:
        if not self.amqp:
            return None
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if dead:
            return arguments
        arguments["x-delivery-limit"] = self.delivery_limit
        arguments["x-dead-letter-exchange"] = self.dead_letter_exchange.name
        if single_active:
            arguments["x-single-active-consumer"] = True
        return arguments
