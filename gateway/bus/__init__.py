"""The message bus (kombu): topology, confirmed publishing, the outbox relay, consumers.

Nothing here connects at import time; connections open on first use.
"""

from gateway.bus.consumer import Handler, PoisonMessage, TransientError, Worker, is_transient
from gateway.bus.publisher import BusUnavailable, Publisher, broker_connection
from gateway.bus.relay import Relay, pending_count, relay_once
from gateway.bus.topology import TOPICS, Topology, UnknownTopic, is_amqp_url, partition_for

__all__ = [
    "TOPICS",
    "BusUnavailable",
    "Handler",
    "PoisonMessage",
    "Publisher",
    "Relay",
    "Topology",
    "TransientError",
    "UnknownTopic",
    "Worker",
    "broker_connection",
    "is_amqp_url",
    "is_transient",
    "partition_for",
    "pending_count",
    "relay_once",
]
