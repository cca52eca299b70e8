# (kombu ships py.typed but leaves most functions unannotated; remove this line once
# pyproject.toml sets `untyped_calls_exclude = ["kombu"]` for mypy.)
"""Publishing to the bus: JSON, persistent, confirmed by the broker, bounded in time.

Errors::

    BusUnavailable       the broker did not take the message within the bounded retries
                         (connection refused or lost, confirm timeout, nack, unroutable)
    UnknownTopic         (ValueError, from topology) the topic is not declared

``publish`` returns only once the broker has confirmed the message (publisher confirms on
AMQP; the in-process memory transport stores it synchronously), so a caller may record it
as published right after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kombu.connection import Connection
from kombu.exceptions import OperationalError
from kombu.messaging import Producer

from gateway.bus.topology import Topology, is_amqp_url

if TYPE_CHECKING:
    from gateway.settings import Settings

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "BusUnavailable",
    "ConnectionFactory",
    "Publisher",
    "broker_connection",
]

logger = logging.getLogger(__name__)

ConnectionFactory = Callable[[], Connection]

PERSISTENT = 2
HEARTBEAT = 30.0
MEMORY_POLLING_INTERVAL = 0.02
DEFAULT_RETRY_POLICY: dict[str, float] = {
    "max_retries": 3,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2.0,
}


class BusUnavailable(RuntimeError):
    """The broker did not confirm a message; it was not (reliably) published."""


def broker_connection(
    url: str,
    *,
    timeout: float,
    heartbeat: float = HEARTBEAT,
    retry_policy: dict[str, float] | None = None,
) -> Connection:
    """A kombu connection (not yet connected) with bounded timeouts and, on AMQP, confirms."""
    policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
    if not is_amqp_url(url):
        if url.rstrip("/") == "memory:":
            url = "memory://localhost/"  # kombu warns about a URL without a host
        options: dict[str, Any] = {"polling_interval": MEMORY_POLLING_INTERVAL, **policy}
        return Connection(url, transport_options=options)
    options = {
        "confirm_publish": True,
        "read_timeout": timeout,
        "write_timeout": timeout,
        **policy,
    }
    return Connection(url, connect_timeout=timeout, heartbeat=heartbeat, transport_options=options)


class Publisher:
    """Publishes to the topology's exchange over one reused connection; thread-safe."""

    def __init__(
        self,
        connection_factory: ConnectionFactory,
        topology: Topology,
        *,
        timeout: float = 5.0,
        retry_policy: dict[str, float] | None = None,
        idle_timeout: float = HEARTBEAT / 2,
    ) -> None:
        self.topology = topology
        self._factory = connection_factory
        self._timeout = timeout
        self._policy = dict(DEFAULT_RETRY_POLICY if retry_policy is None else retry_policy)
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._declared: set[str] = set()  # topics declared on the current connection
        self._last_used = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, topology: Topology | None = None) -> Publisher:
        """A publisher for ``EH_BROKER_URL`` with ``EH_BROKER_TIMEOUT``."""
        url, timeout = settings.broker_url, settings.broker_timeout
        return cls(
            lambda: broker_connection(url, timeout=timeout),
            topology or Topology.from_settings(settings),
            timeout=timeout,
        )

    @property
    def topics(self) -> frozenset[str]:
        return self.topology.topics

    def publish(
        self, topic: str, *, message_id: str, routing_hint: str, payload: dict[str, Any]
    ) -> None:
        """Publish one message and return once the broker has it; else ``BusUnavailable``."""
        routing_key = self.topology.routing_key(topic, routing_hint)
        with self._lock:
            producer = self._producer_locked()
            # Declared once per topic and connection: kombu binds a copy of every entity it
            # is given on each publish, which cost more than the publish itself.
            declare = [] if topic in self._declared else self._declarations(topic)
            try:
                producer.publish(
                    payload,
                    exchange=self.topology.exchange,
                    routing_key=routing_key,
                    serializer="json",
                    delivery_mode=PERSISTENT,
                    message_id=message_id,
                    declare=declare,
                    mandatory=self.topology.amqp,
                    retry=True,
                    retry_policy=self._policy,
                    timeout=self._timeout,
                    confirm_timeout=self._timeout,
                )
            except self._errors() as exc:
                self._reset_locked()
                raise BusUnavailable(
                    f"the broker did not confirm message {message_id} on topic {topic!r} "
                    f"within {self._policy.get('max_retries')} retries ({type(exc).__name__}); "
                    "it stays unpublished: check EH_BROKER_URL and that the broker is up"
                ) from exc
            self._declared.add(topic)
            self._last_used = time.monotonic()

    def keepalive(self) -> None:
        """Call often (the relay does each tick): heartbeats, and idle connections closed."""
        with self._lock:
            connection = self._connection
            if connection is None:
                return
            if time.monotonic() - self._last_used > self._idle_timeout:
                self._close_locked()
                return
            try:
                connection.heartbeat_check()
            except self._errors():
                self._reset_locked()

    def close(self) -> None:
        """Close the connection; a later publish opens a new one."""
        with self._lock:
            self._close_locked()

    def _declarations(self, topic: str) -> list[Any]:
        return [self.topology.dead_letter_queue, *self.topology.queues_for(topic)]

    def _producer_locked(self) -> Producer:
        if self._producer is None:
            self._declared.clear()
            self._connection = self._factory()
            self._producer = Producer(
                self._connection, exchange=self.topology.exchange, auto_declare=False
            )
            self._last_used = time.monotonic()
        return self._producer

    def _errors(self) -> tuple[type[BaseException], ...]:
        errors: tuple[type[BaseException], ...] = (OperationalError, _message_nacked())
        if self._connection is not None:
            errors += tuple(self._connection.connection_errors)
            errors += tuple(self._connection.channel_errors)
        return errors

    def _reset_locked(self) -> None:
        """Drop a broken connection without touching the network."""
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            connection.collect()

    def _close_locked(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is None:
            return
        try:
            connection.release()
        except (OperationalError, *connection.connection_errors, *connection.channel_errors):
            connection.collect()


def _message_nacked() -> type[BaseException]:
    """py-amqp's nack error (amqp ships no type hints, so it is looked up here)."""
    from amqp.exceptions import MessageNacked  # type: ignore[import-untyped]

    nacked: type[BaseException] = MessageNacked
    return nacked
