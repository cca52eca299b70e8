"""Rate limits per connector over real HTTP: a token bucket each, 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.api import create_app
from gateway.api.ratelimit import TokenBuckets
from gateway.bootstrap import Hub
from gateway.metrics import REGISTRY
from gateway.store.models import IdempotentResponse, InboundEvent
from tests.integration.test_api_helpers import (
    LiveServer,
    make_hub,
    post_signed,
    raised_event,
    register_agency,
    register_connector,
)


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(sqlite_url: str) -> Iterator[Hub]:
    built = make_hub(sqlite_url)
    yield built
    built.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(hub: Hub, clock: Clock) -> Iterator[httpx.Client]:
    buckets = TokenBuckets(rate=0.5, burst=2, clock=clock)
    app = create_app(hub, rate_limits=buckets)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture
def two_connectors(client: httpx.Client) -> tuple[tuple[str, str], tuple[str, str]]:
    health = register_agency(client, "nhft")
    care = register_agency(client, "nncc", kind="social_care")
    return register_connector(client, "nhft", health), register_connector(client, "nncc", care)


def refused_for_rate() -> float:
    return REGISTRY.get_sample_value("eh_events_refused_total", {"reason": "rate"}) or 0.0


def stored(hub: Hub, webhook_id: str) -> int:
    with hub.sessions() as session:
        answers = session.scalar(
            select(func.count()).where(IdempotentResponse.webhook_id == webhook_id)
        )
        return int(answers or 0)


def send(client: httpx.Client, connector: tuple[str, str], n: int, agency: str) -> httpx.Response:
    event: dict[str, Any] = raised_event(agency, "nncc" if agency == "nhft" else "nhft")
    event["id"] = f"evt-{agency}-{n}"
    return post_signed(client, *connector, event, webhook_id=f"wh-{agency}-{n}")


def test_a_connector_past_its_burst_gets_429_with_retry_after_and_nothing_is_stored(
    hub: Hub, client: httpx.Client, two_connectors: Any
) -> None:
    health, _ = two_connectors
    before = refused_for_rate()

    answers = [send(client, health, n, "nhft") for n in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    refused = answers[2]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "2"  # one token at 0.5 a second
    assert refused.json()["status"] == 429
    assert "wait 2 s" in refused.json()["detail"]
    assert refused_for_rate() == before + 1
    assert stored(hub, "wh-nhft-2") == 0
    with hub.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 2


def test_other_connectors_are_unaffected_by_one_that_is_limited(
    client: httpx.Client, two_connectors: Any
) -> None:
    health, care = two_connectors
    for n in range(3):
        send(client, health, n, "nhft")

    assert send(client, health, 3, "nhft").status_code == 429
    assert send(client, care, 0, "nncc").status_code == 202
    assert send(client, care, 1, "nncc").status_code == 202


def test_the_bucket_refills_with_time(
    client: httpx.Client, clock: Clock, two_connectors: Any
) -> None:
    health, _ = two_connectors
    assert [send(client, health, n, "nhft").status_code for n in range(3)] == [202, 202, 429]

    clock.now += 2.0  # one token back

    assert send(client, health, 3, "nhft").status_code == 202
    assert send(client, health, 4, "nhft").status_code == 429


def test_reads_and_registration_are_not_counted_against_a_connector(
    client: httpx.Client, two_connectors: Any
) -> None:
    health, _ = two_connectors
    for _ in range(5):
        assert client.get("/healthz").status_code == 200

    assert [send(client, health, n, "nhft").status_code for n in range(2)] == [202, 202]


def test_buckets_forget_the_least_recently_used_beyond_their_limit() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=1, clock=clock, max_tracked=2)

    assert buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(1.0)
    buckets.take("b")
    buckets.take("c")  # "a" is forgotten: it starts again with a full bucket

    assert buckets.take("a") is None


def test_token_buckets_refuse_a_rate_or_burst_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBuckets(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst >= 1"):
        TokenBuckets(rate=1, burst=0)
