"""Rate limits per connector: a token bucket for each connector's event intake.

Each ``POST /v1/connectors/{id}/events`` takes one token from that connector's bucket, which
holds at most ``burst`` tokens and refills at ``rate`` tokens a second. An empty bucket answers
429 (a problem document with ``Retry-After``, counted as ``eh_events_refused{reason="rate"}``)
before the body is read or the database touched; other connectors are unaffected. Buckets live
in this process: with N gateway replicas behind a load balancer a connector may send up to N
times the rate. The check runs before the signature (a rejected request costs nothing), so the
bucket of a connector whose id is known to someone else can be drained by them; ids are
random and not published. Idle buckets are forgotten, so unknown ids cannot grow memory.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import instance_of, problem_response
from gateway.metrics import INGEST_REFUSED

__all__ = [
    "BURST",
    "MAX_TRACKED",
    "RATE_PER_SECOND",
    "RateLimit",
    "TokenBuckets",
    "events_connector",
]

RATE_PER_SECOND: Final = 20.0  # sustained requests a second per connector (each may be a batch)
BURST: Final = 40  # requests a connector may send at once after being idle
MAX_TRACKED: Final = 10_000  # buckets kept; beyond this, the least recently used are forgotten
#: An id as ``access.ObjectId`` takes it (no "/"): any other goes on to be refused as invalid.
_EVENTS_PATH = re.compile(r"/v1/connectors/([\x21-\x2e\x30-\x7e]{1,64})/events")


def events_connector(scope: Scope) -> str | None:
    """The connector id of a ``POST /v1/connectors/{id}/events`` request, else None."""
    if scope["type"] != "http" or scope.get("method") != "POST":
        return None
    match = _EVENTS_PATH.fullmatch(str(scope.get("path", "")))
    return match.group(1) if match else None


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Thread-safe token buckets by key: ``take`` a token or learn how long to wait."""

    def __init__(
        self,
        *,
        rate: float = RATE_PER_SECOND,
        burst: int = BURST,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        if rate <= 0 or burst < 1 or max_tracked < 1:
            raise ValueError("token buckets need rate > 0, burst >= 1 and max_tracked >= 1")
        self.rate, self.burst = rate, burst
        self._clock, self._max = clock, max_tracked
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Take one token for ``key``: None if granted, else the seconds until one is due."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets[key] = bucket  # most recently used last
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate


class RateLimit:
    """ASGI middleware: 429 with Retry-After when a connector's bucket is empty."""

    def __init__(self, app: ASGIApp, *, buckets: TokenBuckets) -> None:
        self.app, self.buckets = app, buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connector_id = events_connector(scope)
        wait = None if connector_id is None else self.buckets.take(connector_id)
        if wait is None:
            await self.app(scope, receive, send)
            return
        INGEST_REFUSED.labels(reason="rate").inc()
        seconds = max(1, math.ceil(wait))
        detail = (
            f"this connector sent more than {self.buckets.rate:g} requests a second "
            f"(bursts of {self.buckets.burst}); nothing was read or stored: wait {seconds} s "
            "(Retry-After), then resend, or send events in batches"
        )
        response = problem_response(
            429,
            "Too many requests",
            detail,
            instance=instance_of(scope),
            headers={"Retry-After": str(seconds)},
        )
        await response(scope, receive, send)
