"""The delivery retry policy against stubbed HTTP answers (respx): what is retried, how long
it waits, and when it gives up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import httpx
import pytest
import respx

from gateway.services.delivery import (
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
from gateway.services.email import MailRefused, MailRetriable
from security.webhooks import new_secret, verify

URL = "https://care.example.org/hooks/escalations?token=abc"
NOW = datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
SECRET = new_secret()
REQUEST = WebhookRequest(URL, "dlv_01HZX3", b"eyJhbGciOi.e30.aa.bb.cc", (SECRET,))


class FakeSleep:
    """Records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False) as http:
        yield http


def policy(sleep: FakeSleep, attempts: int = 6, maximum: float = 60.0) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial=0.5, maximum=maximum, sleep=sleep)


def run(client: httpx.Client, retry: RetryPolicy) -> tuple[Attempt, list[Attempt]]:
    """Run the policy over real post_webhook calls, keeping every attempt's outcome."""
    seen: list[Attempt] = []

    def attempt() -> Attempt:
        seen.append(post_webhook(client, REQUEST, now=lambda: NOW))
        return seen[-1]

    return retry.run(attempt), seen


@respx.mock
def test_two_server_errors_then_success_take_three_attempts(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    route = respx.post(URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(500), httpx.Response(200)]
    )
    last, seen = run(client, policy(sleep))
    assert last.verdict is Verdict.OK
    assert [a.status for a in seen] == [500, 500, 200]
    assert route.call_count == 3
    assert len(sleep.waits) == 2


@respx.mock
def test_every_attempt_carries_the_same_webhook_id_and_a_valid_signature(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    route = respx.post(URL).mock(side_effect=[httpx.Response(503), httpx.Response(204)])
    run(client, policy(sleep))
    for call in route.calls:
        request = call.request
        assert request.headers["content-type"] == JOSE_MEDIA_TYPE
        assert request.content == REQUEST.body
        assert verify([SECRET], dict(request.headers), request.content, now=NOW) == "dlv_01HZX3"


@respx.mock
def test_a_429_with_retry_after_seconds_waits_that_long(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    respx.post(URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)]
    )
    last, _ = run(client, policy(sleep))
    assert last.verdict is Verdict.OK
    assert sleep.waits == [2.0]


@respx.mock
def test_a_503_with_retry_after_as_an_http_date_waits_until_then(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    when = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    respx.post(URL).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": when}), httpx.Response(200)]
    )
    run(client, policy(sleep))
    assert sleep.waits == [7.0]


@respx.mock
def test_retry_after_is_capped_at_the_longest_backoff(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    respx.post(URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(200)]
    )
    run(client, policy(sleep, maximum=30.0))
    assert sleep.waits == [30.0]


@respx.mock
def test_a_400_is_not_retried_and_ends_the_delivery(client: httpx.Client, sleep: FakeSleep) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(400))
    last, _ = run(client, policy(sleep))
    assert last.verdict is Verdict.FATAL
    assert last.error == "HTTP 400 Bad Request"
    assert route.call_count == 1
    assert sleep.waits == []


@respx.mock
def test_a_410_is_not_retried_and_says_the_receiver_is_gone(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(410))
    last, _ = run(client, policy(sleep))
    assert last.verdict is Verdict.GONE
    assert route.call_count == 1


@respx.mock
def test_a_redirect_is_not_followed_and_is_fatal(client: httpx.Client, sleep: FakeSleep) -> None:
    route = respx.post(URL).mock(
        return_value=httpx.Response(307, headers={"Location": "https://elsewhere.example/"})
    )
    last, _ = run(client, policy(sleep))
    assert last.verdict is Verdict.FATAL
    assert "register the final callback URL" in (last.error or "")
    assert route.call_count == 1


@respx.mock
def test_timeouts_and_refused_connections_are_retried(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    respx.post(URL).mock(
        side_effect=[
            httpx.ReadTimeout("timed out"),
            httpx.ConnectError("refused"),
            httpx.Response(200),
        ]
    )
    last, seen = run(client, policy(sleep))
    assert last.verdict is Verdict.OK
    assert [a.verdict for a in seen] == [Verdict.RETRY, Verdict.RETRY, Verdict.OK]
    assert seen[0].error == "ReadTimeout: timed out"
    assert seen[0].status is None


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_these_statuses_are_retriable(status: int) -> None:
    assert classify(status, None, now=NOW).verdict is Verdict.RETRY


@pytest.mark.parametrize("status", [401, 403, 404, 409, 413, 422])
def test_other_client_errors_are_fatal(status: int) -> None:
    assert classify(status, None, now=NOW).verdict is Verdict.FATAL


@respx.mock
def test_attempts_are_bounded_and_the_last_failure_is_returned(
    client: httpx.Client, sleep: FakeSleep
) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(502))
    last, _ = run(client, policy(sleep, attempts=4))
    assert last.verdict is Verdict.RETRY
    assert last.status == 502
    assert route.call_count == 4
    assert len(sleep.waits) == 3


def test_backoff_grows_exponentially_with_jitter_up_to_the_maximum(sleep: FakeSleep) -> None:
    retry = RetryPolicy(attempts=6, initial=1.0, maximum=5.0, sleep=sleep)
    retry.run(lambda: Attempt(Verdict.RETRY, status=500))
    low = [1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(lo <= wait <= min(lo + 1.0, 5.0) for lo, wait in zip(low, sleep.waits, strict=True))


def test_retry_after_on_a_500_is_ignored_for_ordinary_backoff() -> None:
    assert classify(500, "120", now=NOW).retry_after is None
    assert classify(429, "120", now=NOW).retry_after == 120.0


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", ""])
def test_an_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_a_retry_after_date_in_the_past_means_no_wait() -> None:
    past = format_datetime(NOW - timedelta(minutes=1), usegmt=True)
    assert parse_retry_after(past, now=NOW) == 0.0


def test_a_policy_without_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts >= 1"):
        RetryPolicy(attempts=0, initial=1.0, maximum=2.0)


class ScriptedMailer:
    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.sent = 0

    def send(self, message: EmailMessage, *, to: str) -> int:
        outcome = self.outcomes.pop(0)
        self.sent += 1
        if outcome is not None:
            raise outcome
        return 250


def test_a_temporary_smtp_failure_is_retried_and_a_permanent_one_is_not(
    sleep: FakeSleep,
) -> None:
    mailer = ScriptedMailer(MailRetriable("SMTP 451", code=451), None)
    last = policy(sleep).run(lambda: send_email(mailer, EmailMessage(), to="bo@example.org"))
    assert (last.verdict, last.status, mailer.sent) == (Verdict.OK, 250, 2)

    refusing = ScriptedMailer(MailRefused("SMTP 550 no such mailbox", code=550))
    last = policy(sleep).run(lambda: send_email(refusing, EmailMessage(), to="x@example.org"))
    assert (last.verdict, last.status, refusing.sent) == (Verdict.FATAL, 550, 1)
