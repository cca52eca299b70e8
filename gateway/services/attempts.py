"""One delivery attempt and the retries around it: verdicts, the policy, webhook and e-mail sends.

An attempt never raises for a channel failure; its ``Verdict`` drives the retries::

    Verdict.OK     2xx, SMTP 250                              -> "succeeded"
    Verdict.RETRY  timeouts, connection errors, 408, 425,     -> again, bounded backoff with
                   429, 5xx, SMTP 4xx                            jitter (Retry-After on 429/503)
    Verdict.FATAL  other 4xx, 3xx (never followed), SMTP 5xx, -> "dead" (a dead letter)
                   a callback host that resolves to a
                   forbidden address at connect time
    Verdict.GONE   410                                        -> connector disabled, "dead"
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from gateway.api.urls import ForbiddenAddress
from gateway.services.email import Mailer, MailError
from gateway.settings import Settings
from security import webhooks

__all__ = [
    "JOSE_MEDIA_TYPE",
    "Attempt",
    "RetryPolicy",
    "Verdict",
    "WebhookRequest",
    "classify",
    "parse_retry_after",
    "post_webhook",
    "send_email",
]

JOSE_MEDIA_TYPE: Final = "application/jose"
_RETRIABLE_STATUS: Final = frozenset({408, 425, 429})
_RETRY_AFTER_STATUS: Final = frozenset({429, 503})
_MAX_RESPONSE_BYTES: Final = 64 * 1024
_SECONDS = re.compile(r"[0-9]{1,10}")


class Verdict(StrEnum):
    """How one attempt ended; the value is the metrics label."""

    OK = "succeeded"
    RETRY = "retriable"
    FATAL = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome: status (HTTP or SMTP code), short error, wait asked for."""

    verdict: Verdict
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts, exponential backoff with jitter, Retry-After capped at ``maximum``."""

    attempts: int
    initial: float
    maximum: float
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("RetryPolicy needs attempts >= 1 and 0 < initial <= maximum")

    @classmethod
    def from_settings(
        cls, settings: Settings, *, sleep: Callable[[float], None] = time.sleep
    ) -> RetryPolicy:
        """The policy from EH_DELIVERY_ATTEMPTS and EH_DELIVERY_BACKOFF_INITIAL/_MAX."""
        initial = settings.delivery_backoff_initial
        return cls(
            settings.delivery_attempts, initial, max(initial, settings.delivery_backoff_max), sleep
        )

    def run(self, attempt: Callable[[], Attempt]) -> Attempt:
        """Call ``attempt`` until it is not retriable or the attempts are spent; the last."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=retry_if_result(lambda result: result.verdict is Verdict.RETRY),
            sleep=self.sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        result: Attempt = retrying(attempt)
        return result

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: Retry-After if given, else jittered backoff."""
        last = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if isinstance(last, Attempt) and last.retry_after is not None:
            return min(last.retry_after, self.maximum)
        backoff = wait_exponential(multiplier=self.initial) + wait_random(0, self.initial)
        return min(float(backoff(state)), self.maximum)


@dataclass(frozen=True)
class WebhookRequest:
    """One prepared webhook: the target, the stable id and the JWE; secrets never shown."""

    url: str
    delivery_id: str
    body: bytes
    secrets: tuple[str, ...] = field(repr=False)


def post_webhook(
    client: httpx.Client, request: WebhookRequest, *, now: Callable[[], datetime]
) -> Attempt:
    """POST the JWE once, freshly signed; network and HTTP failures become a Verdict."""
    moment = now()
    headers = webhooks.sign(request.secrets, request.delivery_id, moment, request.body)
    headers["content-type"] = JOSE_MEDIA_TYPE
    started = time.perf_counter()
    try:
        with client.stream("POST", request.url, content=request.body, headers=headers) as response:
            _drain(response)
    except ForbiddenAddress as exc:  # the guarded transport refused the address: nothing sent
        return Attempt(Verdict.FATAL, error=f"refused at connect: {exc}", seconds=_since(started))
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Attempt(Verdict.FATAL, error=_describe(exc), seconds=_since(started))
    except httpx.HTTPError as exc:  # timeouts, refused and reset connections, protocol errors
        return Attempt(Verdict.RETRY, error=_describe(exc), seconds=_since(started))
    retry_after = response.headers.get("retry-after")
    return classify(response.status_code, retry_after, now=moment, seconds=_since(started))


def classify(
    status: int, retry_after: str | None, *, now: datetime, seconds: float = 0.0
) -> Attempt:
    """The verdict on an HTTP status (see the module docstring)."""
    if 200 <= status < 300:
        return Attempt(Verdict.OK, status=status, seconds=seconds)
    error = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if status == 410:
        verdict = Verdict.GONE
    elif status in _RETRIABLE_STATUS or 500 <= status <= 599:
        verdict = Verdict.RETRY
    else:
        verdict = Verdict.FATAL
        if 300 <= status < 400:
            error += " (redirects are not followed: register the final callback URL)"
    wait = parse_retry_after(retry_after, now=now) if status in _RETRY_AFTER_STATUS else None
    return Attempt(verdict, status=status, error=error, retry_after=wait, seconds=seconds)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if odd."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def send_email(mailer: Mailer, message: EmailMessage, *, to: str) -> Attempt:
    """Send the message once; SMTP failures become a Verdict."""
    started = time.perf_counter()
    try:
        code = mailer.send(message, to=to)
    except MailError as exc:
        verdict = Verdict.RETRY if exc.retriable else Verdict.FATAL
        return Attempt(verdict, status=exc.code, error=str(exc), seconds=_since(started))
    return Attempt(Verdict.OK, status=code, seconds=_since(started))


def _drain(response: httpx.Response) -> None:
    """Read (and drop) at most 64 KiB of the answer, so the connection can be reused."""
    seen = 0
    try:
        for chunk in response.iter_raw():
            seen += len(chunk)
            if seen >= _MAX_RESPONSE_BYTES:
                return
    except httpx.HTTPError:  # the status line has arrived; that is the answer
        return


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _since(started: float) -> float:
    return time.perf_counter() - started
