"""Delivery: stage updates and notifications pushed to case systems (webhook) and mailboxes.

The Delivery row is the truth; a "deliver" message is only a poke, acked at once. Each target
(a connector, or a mailbox) is a lane (``gateway.services.lanes``): at most one delivery
process works it at a time, holding its lease in the database, and sends its pending rows
strictly in ``Delivery.seq`` order, one at a time, so every agency gets its updates in the
order they were decided, however many delivery processes run.

In a process, lanes take turns on a thread pool (one delivery per turn), so a failing agency
never holds up a healthy one. A poke for a lane leased by another live process is dropped, the
holder drains the lane; unless the holder has two lanes more than this process: then it is
asked for the lane and hands it over between two deliveries (``gateway.services.lane_wants``),
so lanes spread over the delivery processes. A holder renews its leases (a keeper thread) and
checks its lease before every attempt; when its lane is empty it releases the lease and
looks once more, so a poke that came meanwhile is never stranded. ``recover()`` (start-up and
periodic) takes only lanes with pending rows and a free or expired lease, so a killed
process's lanes are taken over once its leases expire. Every attempt is recorded in its own
short transaction; a store outage pauses a lane (growing waits), it never drops a delivery.

One attempt and its retries live in ``gateway.services.attempts`` (re-exported here), one
delivery's preparation and recording in ``gateway.services.sending``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import traceback
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any, Final

import httpx

from gateway.api.urls import Resolver
from gateway.bootstrap import Hub, utc_now
from gateway.bus.consumer import PoisonMessage, TransientError, is_transient
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
from gateway.services.egress import guarded_client
from gateway.services.email import Mailer, SmtpMailer
from gateway.services.lane_work import LaneWork, Turn
from gateway.services.lanes import LaneLeases
from gateway.services.rendering import Renderer
from gateway.services.sending import Sender

__all__ = [
    "JOSE_MEDIA_TYPE",
    "LEASE_SECONDS",
    "RENEW_EVERY_SECONDS",
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

_CONNECTOR_LANE: Final = re.compile(r"connector:[\x21-\x7e]{1,200}")
LEASE_SECONDS: Final = 30.0  # a dead holder's lanes are taken over after this
RENEW_EVERY_SECONDS: Final = 5.0  # how often a live holder extends its leases
PREFETCH: Final = 16  # a lane's pending ids read at once (one read instead of one per send)

logger = logging.getLogger(__name__)


class _Stopping(Exception):
    """The dispatcher is closing: leave the delivery pending for recover()."""


class _LeaseLost(Exception):
    """Another process took the lane over: leave the delivery pending; its holder sends it."""


def handle_deliver(
    hub: Hub, message_id: str, payload: Mapping[str, Any], *, dispatcher: Dispatcher | None = None
) -> None:
    """Hand the poked delivery to the dispatcher and return: the bus may ack at once.

    A poke naming its lane is trusted for the lane (the delivery may be any of its rows: the
    lane is worked whole, in order); one without is looked up and must name a stored row."""
    delivery_id = payload.get("delivery_id") if isinstance(payload, Mapping) else None
    if not isinstance(delivery_id, str) or not 0 < len(delivery_id) <= 200:
        raise PoisonMessage(
            f"deliver message {message_id} needs 'delivery_id', a string of 1-200 characters"
        )
    lane = payload.get("lane")  # set by the router for connector lanes: saves a lookup
    lane = lane if isinstance(lane, str) and _CONNECTOR_LANE.fullmatch(lane) else None
    try:
        known = (dispatcher or dispatcher_for(hub)).submit(delivery_id, lane=lane)
    except DispatcherClosed as exc:
        raise TransientError("the delivery worker is stopping; the message is retried") from exc
    if not known:
        raise PoisonMessage(f"deliver message {message_id} names no stored delivery")


class DispatcherClosed(RuntimeError):
    """The dispatcher was closed; pending rows are delivered by recover() in a new one."""


class Dispatcher:
    """Works the lanes this process leases, on a thread pool; the rows are the truth.

    The lease takes ``lease_seconds``, ``renew_every``, ``clock`` and ``holder`` (default: a
    new id for this dispatcher), unless ``leases`` is given whole.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        http_client: httpx.Client | None = None,
        smtp: Mailer | None = None,
        policy: RetryPolicy | None = None,
        renderers: Mapping[str, Renderer] | None = None,
        resolve: Resolver = socket.getaddrinfo,
        lease_seconds: float = LEASE_SECONDS,
        renew_every: float = RENEW_EVERY_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        holder: str | None = None,
        leases: LaneLeases | None = None,
    ) -> None:
        settings = hub.settings
        self._owns_client = http_client is None
        self._http = http_client or guarded_client(settings, resolve=resolve)
        mailer = smtp or SmtpMailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            timeout=settings.delivery_timeout,
        )
        self._sender = Sender(
            hub, http=self._http, mailer=mailer, renderers=renderers, resolve=resolve
        )
        self._stopping = threading.Event()
        self._policy = policy or RetryPolicy.from_settings(settings, sleep=self._sleep)
        self._leases = leases or LaneLeases(
            hub.engine,
            holder=holder or _process_holder(),
            seconds=lease_seconds,
            clock=clock,
            reader=hub.reader,
        )
        # per lane: the lease the ids were read under, and the ids read ahead (_next)
        self._upcoming: dict[str, tuple[datetime | None, deque[str]]] = {}
        self._upcoming_lock = threading.Lock()
        self._work = LaneWork(
            self._leases,
            turn=self._turn,
            pool=ThreadPoolExecutor(settings.delivery_concurrency, "deliver"),
            stopping=self._stopping,
            renew_every=renew_every,
        )

    @property
    def holder(self) -> str:
        """This dispatcher's id in ``delivery_lanes.holder``."""
        return self._leases.holder

    def submit(self, delivery_id: str, *, lane: str | None = None) -> bool:
        """Work the delivery's lane here unless another process leases it; False if unknown."""
        if self._stopping.is_set():
            raise DispatcherClosed("the dispatcher is closed; recover() in a new one delivers")
        lane = lane or self._leases.lane_of(delivery_id)
        if lane is None:
            logger.warning("delivery.unknown", extra={"delivery_id": delivery_id})
            return False
        if not self._work.start(lane):
            self._closed_check()
        return True

    def recover(self, *, only_process: bool = False) -> int:
        """Take every lane with pending rows and no live lease elsewhere; its pending count.

        ``only_process``: this is the only delivery process (embedded), so any other holder's
        lease is an earlier life of this one and is void at once.
        """
        if only_process and (voided := self._leases.void_others()):
            logger.info("delivery.leases_voided", extra={"count": voided})
        claimable = self._leases.claimable()
        taken = {lane: n for lane, n in claimable.items() if self._work.start(lane)}
        logger.info("delivery.recovered", extra={"count": sum(taken.values()), "lanes": len(taken)})
        return sum(taken.values())

    @property
    def closed(self) -> bool:
        """True once close() has been called."""
        return self._stopping.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no lane is being worked here; False if the timeout came first."""
        return self._work.wait_idle(timeout)

    def close(self) -> None:
        """Stop: a delivery waiting to retry stays pending; our leases are given back."""
        self._work.close()
        if self._owns_client:
            self._http.close()

    def deliver_one(self, delivery_id: str, *, lane: str | None = None) -> None:
        """Attempt one pending delivery until it succeeds or is dead; skip any other status.

        With ``lane``, every attempt first checks that this dispatcher still holds its lease.
        """
        try:
            job = self._sender.prepare(delivery_id)
        except deadletters.Undeliverable as refusal:
            self._sender.conclude(delivery_id, None, refusal=refusal)
            return
        if job is None:
            return
        try:
            last = self._policy.run(partial(self._attempt, lane, delivery_id, *job))
        except (_Stopping, _LeaseLost) as exc:
            why = "stopping" if isinstance(exc, _Stopping) else "lease_lost"
            logger.info("delivery.left_pending", extra={"delivery_id": delivery_id, "why": why})
            return
        if last.verdict is not Verdict.OK:  # a success was concluded with its attempt
            self._sender.conclude(delivery_id, last)

    def _turn(self, lane: str) -> Turn:
        """One turn of a lane whose lease LaneWork has just confirmed: send its next delivery
        in ``seq`` order, if it still has one."""
        delivery_id = self._next(lane)
        if delivery_id is None:
            return Turn.EMPTY
        try:
            self.deliver_one(delivery_id, lane=lane)
        except Exception as exc:  # one delivery's failure must not stop its lane
            if is_transient(exc):  # the store is away: the lane waits, then tries this again
                self._again(lane, delivery_id)
                raise
            self._crashed(delivery_id, exc)
        return Turn.SENT

    def _next(self, lane: str) -> str | None:
        """The lane's next pending delivery: read ``PREFETCH`` at a time, in ``seq`` order.

        A lane has one turn at a time (LaneWork), so its queue has one reader. The ids read
        ahead hold only while the same lease does: a lane given up, handed over or lost and
        taken again is read afresh. An id read earlier that is no longer pending is skipped
        by ``prepare``; a delivery stored meanwhile comes with the next read."""
        held = self._leases.held_since(lane)
        with self._upcoming_lock:
            since, queue = self._upcoming.get(lane, (None, deque()))
            if queue and since == held:
                return queue.popleft()
        found = self._leases.pending_ids(lane, PREFETCH)
        with self._upcoming_lock:
            if found:
                self._upcoming[lane] = (held, deque(found[1:]))
            else:
                self._upcoming.pop(lane, None)
        return found[0] if found else None

    def _again(self, lane: str, delivery_id: str) -> None:
        """Put a delivery back at the head of its lane's queue (its turn failed transiently)."""
        held = self._leases.held_since(lane)
        with self._upcoming_lock:
            since, queue = self._upcoming.get(lane, (held, deque()))
            if since == held:
                queue.appendleft(delivery_id)
                self._upcoming[lane] = (held, queue)

    def _crashed(self, delivery_id: str, exc: Exception) -> None:
        """Dead-letter a delivery whose handling raised (a bug): its lane goes on in order."""
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logger.error(
            "delivery.crashed",
            extra={"delivery_id": delivery_id, "error": type(exc).__name__, "frames": frames},
        )
        refusal = deadletters.Undeliverable(
            f"the delivery worker failed with {type(exc).__name__}: fix the cause (see the "
            "'delivery.crashed' log entry), then replay"
        )
        self._sender.conclude(delivery_id, None, refusal=refusal, reason="crashed")

    def _attempt(
        self, lane: str | None, delivery_id: str, channel: str, send: Callable[[], Attempt]
    ) -> Attempt:
        if self._stopping.is_set():
            raise _Stopping
        if lane is not None and not self._leases.holds(lane):
            raise _LeaseLost
        return self._sender.attempt(delivery_id, channel, send)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Stopping

    def _closed_check(self) -> None:
        if self._stopping.is_set():
            raise DispatcherClosed("the dispatcher is closed; recover() in a new one delivers")


def _process_holder() -> str:
    """A holder id unique to this dispatcher: host, process and a random part."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


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
