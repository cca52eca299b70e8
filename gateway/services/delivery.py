"""Delivery: stage updates and notifications pushed to case systems (webhook) and mailboxes.

The Delivery row is the truth; a "deliver" message is only a poke, acked at once. Deliveries
run on a thread pool with one FIFO lane per target (connector or address): a lane is worked
by one task at a time, one delivery per turn (lanes take turns on the pool), so one agency's
updates arrive in order and a failing agency never holds up a healthy one. Every attempt is
recorded in its own short transaction; ``recover()`` resumes pending rows after a restart.

One attempt and its retries live in ``gateway.services.attempts`` (re-exported here). Before
each webhook the callback host is resolved again and refused when it now names an address an
agency must not reach (dead letter, nothing sent); the HTTP client (``gateway.services.egress``)
vets once more and pins the address it connects to, against DNS rebinding.
"""

from __future__ import annotations

import logging
import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final

import httpx
from pydantic import ValidationError
from sqlalchemy import select, update

from gateway.api.urls import Resolver
from gateway.bootstrap import Hub
from gateway.bus.consumer import PoisonMessage, TransientError
from gateway.metrics import DELIVERIES, DELIVERY_SECONDS
from gateway.services import deadletters
from gateway.services.attempts import (
    JOSE_MEDIA_TYPE,
    Attempt,
    RetryPolicy,
    Verdict,
    WebhookRequest,
    classify,
    parse_retry_after,
    post_webhook,
    send_email,
)
from gateway.services.egress import guarded_client, send_time_refusal
from gateway.services.email import Mailer, SmtpMailer, compose
from gateway.services.rendering import Renderer, RenderError, render
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, DeliveryAttempt
from schemas.updates import Notification
from security import envelopes, webhooks
from security.errors import SecurityError

__all__ = [
    "JOSE_MEDIA_TYPE",
    "Attempt",
    "Dispatcher",
    "DispatcherClosed",
    "RetryPolicy",
    "Verdict",
    "WebhookRequest",
    "classify",
    "dispatcher_for",
    "handle_deliver",
    "parse_retry_after",
    "post_webhook",
    "send_email",
]

logger = logging.getLogger(__name__)
_ACTOR: Final = "delivery"


class _Stopping(Exception):
    """The dispatcher is closing: leave the delivery pending for recover()."""


def handle_deliver(
    hub: Hub, message_id: str, payload: Mapping[str, Any], *, dispatcher: Dispatcher | None = None
) -> None:
    """Hand the poked delivery to the dispatcher and return: the bus may ack at once."""
    delivery_id = payload.get("delivery_id") if isinstance(payload, Mapping) else None
    if not isinstance(delivery_id, str) or not 0 < len(delivery_id) <= 200:
        raise PoisonMessage(
            f"deliver message {message_id} needs 'delivery_id', a string of 1-200 characters"
        )
    try:
        known = (dispatcher or dispatcher_for(hub)).submit(delivery_id)
    except DispatcherClosed as exc:
        raise TransientError("the delivery worker is stopping; the message is retried") from exc
    if not known:
        raise PoisonMessage(f"deliver message {message_id} names no stored delivery")


class DispatcherClosed(RuntimeError):
    """The dispatcher was closed; pending rows are delivered by recover() in a new one."""


class Dispatcher:
    """Runs deliveries on a thread pool, one FIFO lane per target; the row is the truth."""

    def __init__(
        self,
        hub: Hub,
        *,
        http_client: httpx.Client | None = None,
        smtp: Mailer | None = None,
        policy: RetryPolicy | None = None,
        renderers: Mapping[str, Renderer] | None = None,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        settings = hub.settings
        self._hub = hub
        self._resolve = resolve
        self._owns_client = http_client is None
        self._http = http_client or guarded_client(settings, resolve=resolve)
        self._mailer = smtp or SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            timeout=settings.delivery_timeout,
        )
        self._stopping = threading.Event()
        self._policy = policy or RetryPolicy.from_settings(settings, sleep=self._sleep)
        self._renderers = dict(renderers or {})
        self._pool = ThreadPoolExecutor(settings.delivery_concurrency, "deliver")
        self._cond = threading.Condition()
        self._lanes: dict[str, deque[str]] = {}
        self._in_flight = 0

    def submit(self, delivery_id: str, *, lane: str | None = None) -> bool:
        """Queue a delivery on its target's lane; False if no such delivery exists."""
        lane = lane or self._lane_of(delivery_id)
        if lane is None:
            logger.warning("delivery.unknown", extra={"delivery_id": delivery_id})
            return False
        with self._cond:
            if self._stopping.is_set():
                raise DispatcherClosed("the dispatcher is closed; recover() in a new one delivers")
            queue = self._lanes.get(lane)
            if queue is None:  # a new lane: one task at a time works it
                self._lanes[lane] = deque([delivery_id])
                self._in_flight += 1
                self._pool.submit(self._work_lane, lane)
            elif delivery_id not in queue:
                queue.append(delivery_id)
                self._in_flight += 1
        return True

    def recover(self) -> int:
        """Re-dispatch every pending delivery, oldest first (start-up after a crash)."""
        query = (
            select(Delivery.id, Delivery.channel, Delivery.connector_id, Delivery.target)
            .where(Delivery.status == "pending")
            .order_by(Delivery.created_at, Delivery.id)
        )
        with self._hub.sessions() as session:
            rows = session.execute(query).all()
        for row in rows:
            self.submit(row.id, lane=_lane(row.channel, row.connector_id, row.target))
        logger.info("delivery.recovered", extra={"count": len(rows)})
        return len(rows)

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._stopping.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued delivery has run; False if the timeout came first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        """Stop: a delivery waiting to retry stays pending (recover() resumes it)."""
        with self._cond:
            self._stopping.set()
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self._http.close()

    def deliver_one(self, delivery_id: str) -> None:
        """Attempt one pending delivery until it succeeds or is dead; skip any other status."""
        try:
            job = self._prepare(delivery_id)
        except deadletters.Undeliverable as refusal:
            self._conclude(delivery_id, None, refusal=refusal)
            return
        if job is None:
            return
        try:
            last = self._policy.run(partial(self._attempt, delivery_id, *job))
        except _Stopping:
            logger.info("delivery.left_pending", extra={"delivery_id": delivery_id})
            return
        self._conclude(delivery_id, last, refusal=None)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping

    def _work_lane(self, lane: str) -> None:
        """Deliver the lane's next item, then queue the lane behind the others (round robin)."""
        with self._cond:
            delivery_id = self._lanes[lane].popleft()
        try:
            self.deliver_one(delivery_id)
        except Exception:  # a worker's outermost loop: log, keep the lane moving
            logger.exception("delivery.crashed", extra={"delivery_id": delivery_id})
        with self._cond:
            self._in_flight -= 1
            queue = self._lanes[lane]
            if queue and not self._stopping.is_set():
                self._pool.submit(self._work_lane, lane)
            else:  # empty, or closing: what is left stays pending for recover()
                self._in_flight -= len(queue)
                del self._lanes[lane]
            self._cond.notify_all()

    def _lane_of(self, delivery_id: str) -> str | None:
        with self._hub.sessions() as session:
            row = session.get(Delivery, delivery_id)
            return None if row is None else _lane(row.channel, row.connector_id, row.target)

    def _prepare(self, delivery_id: str) -> tuple[str, Callable[[], Attempt]] | None:
        with self._hub.sessions() as session:  # short: no lock is held while encrypting
            row = session.get(Delivery, delivery_id)
            if row is None or row.status != "pending":
                return None
            connector = None
            if row.channel == "webhook":
                connector = session.get(Connector, row.connector_id or "")
        try:
            document = self._hub.sealer.unseal(row.document_sealed, context=f"delivery:{row.id}")
            if row.channel == "webhook":
                return row.channel, self._webhook(connector, row, document)
            if row.channel == "email":
                return row.channel, self._email(row, document)
        except ValidationError as exc:  # locations only: an input value may be a child's name
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:5])
            raise deadletters.Undeliverable(
                f"the document is not a {exc.title} (wrong fields: {where})"
            ) from None
        except (SecurityError, RenderError, ValueError) as exc:
            raise deadletters.Undeliverable(f"{type(exc).__name__}: {exc}") from None
        raise deadletters.Undeliverable(f"channel '{row.channel}' is neither webhook nor email")

    def _webhook(
        self, connector: Connector | None, row: Delivery, document: dict[str, Any]
    ) -> Callable[[], Attempt]:
        if connector is None or connector.status == "disabled":
            raise deadletters.Undeliverable(
                f"connector {row.connector_id} is disabled or unknown: re-enable it, then replay"
            )
        self._check_target(connector.callback_url)
        body, media_type = render(connector.kind, document, renderers=self._renderers)
        token = envelopes.encrypt_for(connector.public_jwk, body, content_type=media_type).encode()
        secrets = self._hub.sealer.unseal(
            connector.secrets_sealed, context=f"connector:{connector.id}"
        )
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise deadletters.Undeliverable(f"connector {connector.id} has no signing secrets")
        webhooks.sign(secrets, row.id, self._hub.clock(), token)  # refuses bad ids and secrets now
        request = WebhookRequest(connector.callback_url, row.id, token, tuple(secrets))
        return partial(post_webhook, self._http, request, now=self._hub.clock)

    def _check_target(self, url: str) -> None:
        """Resolve the callback host again now; dead-letter it if it names a forbidden address."""
        allow = self._hub.settings.allow_loopback_callbacks
        refused = send_time_refusal(url, allow_loopback=allow, resolve=self._resolve)
        if refused is not None:
            raise deadletters.Undeliverable(refused)

    def _email(self, row: Delivery, document: dict[str, Any]) -> Callable[[], Attempt]:
        notification = Notification.model_validate(document)  # forbids fields it does not know
        sender = self._hub.settings.smtp_sender
        message = compose(notification, delivery_id=row.id, sender=sender, to=row.target)
        return partial(send_email, self._mailer, message, to=row.target)

    def _attempt(self, delivery_id: str, channel: str, send: Callable[[], Attempt]) -> Attempt:
        at = self._hub.clock()
        result = send()
        DELIVERIES.labels(channel, result.verdict.value).inc()
        DELIVERY_SECONDS.labels(channel).observe(result.seconds)
        with transaction(self._hub.sessions) as session:
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery_id,
                    attempted_at=at,
                    status_code=result.status,
                    error=result.error,
                    duration_ms=round(result.seconds * 1000),
                )
            )
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    attempts=Delivery.attempts + 1,
                    last_status=result.status,
                    last_error=result.error,
                )
            )
        return result

    def _conclude(
        self, delivery_id: str, last: Attempt | None, *, refusal: deadletters.Undeliverable | None
    ) -> None:
        at = self._hub.clock()
        with transaction(self._hub.sessions) as session:
            row = session.get(Delivery, delivery_id, with_for_update=True)
            if row is None or row.status != "pending":
                return
            if last is not None and last.verdict is Verdict.OK:
                deadletters.mark_succeeded(session, row, at=at, actor=_ACTOR)
            else:
                reason = _REASONS.get(last.verdict if last else None, "refused")
                error = str(refusal) if refusal else None
                deadletters.mark_dead(session, row, at=at, actor=_ACTOR, reason=reason, error=error)
            status, attempts = row.status, row.attempts
        logger.info(
            "delivery.concluded",
            extra={"delivery_id": delivery_id, "status": status, "attempts": attempts},
        )


_REASONS: Final[dict[Verdict | None, str]] = {
    Verdict.RETRY: "exhausted",
    Verdict.FATAL: "fatal",
    Verdict.GONE: "gone",
}


def _lane(channel: str, connector_id: str | None, target: str) -> str:
    if channel == "webhook" and connector_id:
        return f"connector:{connector_id}"
    return f"{channel}:{target.strip().lower()}"


_DISPATCHERS: dict[int, tuple[weakref.ref[Hub], Dispatcher]] = {}
_DISPATCHERS_LOCK = threading.Lock()


def dispatcher_for(hub: Hub) -> Dispatcher:
    """This process's dispatcher for the hub, built on first use (nothing starts at import)."""
    with _DISPATCHERS_LOCK:
        entry = _DISPATCHERS.get(id(hub))
        if entry is not None and entry[0]() is hub and not entry[1].closed:
            return entry[1]
        dispatcher = Dispatcher(hub)
        _DISPATCHERS[id(hub)] = (weakref.ref(hub), dispatcher)
        return dispatcher
