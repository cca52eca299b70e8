# (kombu ships py.typed but leaves most functions unannotated; remove this line once
# pyproject.toml sets `untyped_calls_exclude = ["kombu"]` for mypy.)
"""The consumer base: a kombu ``ConsumerMixin`` that calls a handler and acks after its commit.

A handler ``handler(message_id, payload)`` does its own database transaction, is idempotent
by ``message_id``, and returns after the commit. What it raises decides the message's fate::

    returns               ack
    PoisonMessage         reject without requeue: dead letter (never handled again)
    TransientError,       wait (growing backoff, at most ``backoff_max``), then requeue;
      SQLAlchemy OperationalError, TimeoutError, DisconnectionError, invalidated connection
    anything else         a bug: logged with its stack frames (no message text), dead letter

A body that is not JSON, not an object, or a message without a ``message_id`` property is
poison too. On AMQP a rejected message goes to ``{prefix}.dead`` through the queue's
dead-letter exchange, and each requeue counts toward ``x-delivery-limit``. The memory
transport cannot dead-letter: the worker records a copy in ``{prefix}.dead`` itself (headers
``x-eh-dead-reason`` and ``x-eh-worker``), logs it, then drops the original. A requeued message
goes to the back of its queue on the memory transport; order per escalation is kept by the
event sequence numbers in the database, not by the queue alone.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu.connection import Connection
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message
from kombu.messaging import Producer
from kombu.mixins import ConsumerMixin
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from gateway.bus.topology import Topology

__all__ = ["Handler", "PoisonMessage", "TransientError", "Worker", "is_transient"]

logger = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]
SAFETY_INTERVAL = {True: 0.5, False: 0.1}  # idle seconds between stop checks, by amqp


class PoisonMessage(Exception):
    """The message can never be handled (malformed, refers to nothing): dead-letter it."""


class TransientError(Exception):
    """The handler cannot finish now (a dependency is down); the message is retried later."""


class _Stopping(Exception):
    """Raised inside kombu's reconnect loop to leave it when the worker is stopped."""


def is_transient(exc: BaseException) -> bool:
    """Whether an error means 'try again later' rather than 'this message is bad'."""
    if isinstance(exc, TransientError | OperationalError | PoolTimeoutError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Worker(ConsumerMixin):
    """Consumes one topic (optionally some ``decide`` partitions) and calls ``handler``."""

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        topic: str,
        handler: Handler,
        *,
        name: str,
        prefetch: int = 1,
        consume_from: Sequence[int] | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        partitions = None if consume_from is None else list(consume_from)
        self.connection = connection
        self.topology = topology
        self.topic = topic
        self.handler = handler
        self.name = name
        self.prefetch = prefetch
        self.queues = topology.queues_for(topic, partitions)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._offline = False

    def get_consumers(self, Consumer: Callable[..., Any], channel: Any) -> list[Any]:
        """One consumer for this worker's queues (the dead-letter queue declared first)."""
        self.topology.dead_letter_queue.bind(channel).declare()
        consumer = Consumer(
            queues=self.queues,
            on_message=self._on_message,
            accept=["json"],
            prefetch_count=self.prefetch,
            tag_prefix=f"{self.name}-",
        )
        return [consumer]

    def start_in_thread(self) -> threading.Thread:
        """Run the worker on a daemon thread and return the (started) thread."""
        thread = threading.Thread(target=self.run, name=f"eh-worker-{self.name}", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self) -> None:
        """Ask the worker to finish its current message and return from ``run``."""
        self.should_stop = True
        self._stopping.set()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until the worker's thread has finished its message and returned (after
        ``stop``); False if it is still running after ``timeout`` seconds. Wait before closing
        what its handler uses: a handler still running would reopen the database's pool."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume until stopped, reconnecting after broker outages."""
        kwargs.setdefault("safety_interval", SAFETY_INTERVAL[self.topology.amqp])
        while not self.should_stop:
            try:
                super().run(_tokens, **kwargs)  # type: ignore[no-untyped-call]
            except _Stopping:
                break
            except Exception as exc:  # noqa: BLE001 - the worker's outermost loop
                logger.error("bus.worker_crashed", extra=_failure(self.name, exc))
                self._stopping.wait(1.0)
        self.ready.clear()

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        """Connect, retrying until connected or stopped (never hangs a stop)."""
        with self.create_connection() as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(
                self.on_connection_error,
                None,
                interval_start=0.5,
                interval_step=1.0,
                interval_max=5.0,
                callback=self._raise_if_stopping,
            )
            yield conn

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        if not self._offline:
            self._offline = True
            logger.warning(
                "bus.worker_offline",
                extra={"worker": self.name, "error": type(exc).__name__, "retry_in": interval},
            )

    def on_connection_revived(self) -> None:
        if self._offline:
            self._offline = False
            logger.info("bus.worker_online", extra={"worker": self.name})

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kw: Any) -> None:
        self.ready.set()

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        self.ready.clear()

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise _Stopping

    def _on_message(self, message: Message) -> None:
        message_id = message.properties.get("message_id")
        try:
            payload = message.decode()
        except (ContentDisallowed, DecodeError):
            self._dead_letter(message, "undecodable")
            return
        if not isinstance(payload, dict):
            self._dead_letter(message, "not-an-object")
        elif not isinstance(message_id, str) or not message_id:
            self._dead_letter(message, "no-message-id")
        else:
            self._handle(message, message_id, payload)

    def _handle(self, message: Message, message_id: str, payload: dict[str, Any]) -> None:
        try:
            self.handler(message_id, payload)
        except PoisonMessage:
            self._dead_letter(message, "poison")
        except Exception as exc:  # noqa: BLE001 - the per-message boundary of the worker
            if is_transient(exc):
                self._retry_later(message, message_id, exc)
                return
            logger.error("bus.handler_failed", extra=_failure(self.name, exc, message_id))
            self._dead_letter(message, "handler-error")
        else:
            message.ack()
            if self._failures:
                logger.info("bus.handler_recovered", extra={"worker": self.name})
                self._failures = 0

    def _retry_later(self, message: Message, message_id: str, exc: BaseException) -> None:
        self._failures += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** min(self._failures - 1, 30))
        log = logger.warning if self._failures == 1 else logger.debug
        log(
            "bus.handler_transient",
            extra={
                "worker": self.name,
                "message_id": message_id,
                "error": type(exc).__name__,
                "failures": self._failures,
                "retry_in": delay,
            },
        )
        self._stopping.wait(delay)
        message.requeue()

    def _dead_letter(self, message: Message, reason: str) -> None:
        key = message.delivery_info.get("routing_key", "")
        message_id = message.properties.get("message_id")
        if not self.topology.amqp:
            self._record_dead_letter(message, reason)
        message.reject(requeue=False)
        logger.warning(
            "bus.dead_lettered",
            extra={"worker": self.name, "message_id": message_id, "reason": reason, "key": key},
        )

    def _record_dead_letter(self, message: Message, reason: str) -> None:
        """Memory transport only: copy the message to the dead-letter queue, as AMQP would."""
        dead = self.topology.dead_letter_queue
        Producer(message.channel, auto_declare=False).publish(
            message.body,
            exchange=self.topology.dead_letter_exchange,
            routing_key=message.delivery_info.get("routing_key", ""),
            content_type=message.content_type or "application/data",
            content_encoding=message.content_encoding or "binary",
            headers={"x-eh-dead-reason": reason, "x-eh-worker": self.name},
            message_id=message.properties.get("message_id"),
            declare=[dead],
        )


def _failure(worker: str, exc: BaseException, message_id: str | None = None) -> dict[str, Any]:
    """Log fields of an unexpected error: its type and stack frames, never its message text."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return {
        "worker": worker,
        "message_id": message_id,
        "error": type(exc).__name__,
        "frames": frames,
    }
