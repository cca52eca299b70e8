"""Limits and hostile input at ingest: size, depth, batch, NHS numbers, XML bombs, rate.

Every request here is signed by a real connector (except where the limit comes first), so
it reaches the check under attack. A refusal is a 4xx problem that stores nothing, never a
5xx, and never repeats the offending identifier.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx

from security.webhooks import sign
from tests.security.conftest import Attacks, pending
from tests.security.world import OUTSIDER, World, discussion, event, raised_data

MIB = 1024 * 1024


def _problem(answer: httpx.Response, *statuses: int) -> bool:
    return answer.status_code in statuses and "problem+json" in answer.headers["content-type"]


def test_bodies_over_the_limit_are_refused_with_413_declared_or_streamed(
    world: World, attacks: Attacks
) -> None:
    url = f"/v1/connectors/{world.members['nhft'].connector_id}/events"
    big = b"[" + b" " * (MIB + 16) + b"]"

    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b" " * (64 * 1024)

    before = world.stored_events()
    declared = world.http().post(url, content=big, headers={"content-type": "application/json"})
    streamed = world.http().post(
        url, content=chunks(), headers={"content-type": "application/json"}
    )
    refused = [_problem(a, 413) for a in (declared, streamed)]
    attacks.record(
        "limits", "body over 1 MiB (declared, and streamed chunked)", tried=2, refused=sum(refused)
    )
    assert all(refused), (declared.status_code, streamed.status_code)
    assert world.stored_events() == before


def test_deeply_nested_json_is_refused_without_a_server_error(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhft"]
    depths = (33, 1_000, 100_000)
    answers = [world.post_events(member, b"[" * d + b"]" * d) for d in depths]
    nested = discussion("nhft", world.escalation_id)
    nested["data"]["summary"] = json.loads("[" * 40 + "]" * 40)  # deep inside a valid event
    answers.append(world.post_events(member, nested))
    refused = sum(_problem(a, 400, 422) for a in answers)
    attacks.record(
        "limits", "JSON nested 33 to 100,000 levels", tried=len(answers), refused=refused
    )
    assert refused == len(answers), [a.status_code for a in answers]


def test_batches_over_the_limit_or_empty_are_refused_without_amplification(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nct-csc"]
    one = discussion("nct-csc", world.escalation_id)
    payloads: list[object] = [
        [{**one, "id": f"evt-{i}"} for i in range(101)],
        [{}] * 20_000,
        [],
        "just a string",
        None,
    ]
    before = world.stored_events()
    answers = [world.post_events(member, p) for p in payloads]
    refused = sum(_problem(a, 400, 422) for a in answers)
    attacks.record(
        "limits",
        "batch of 101 or 20,000 events, empty or not a batch",
        tried=len(answers),
        refused=refused,
    )
    assert refused == len(answers), [a.status_code for a in answers]
    assert max(len(a.content) for a in answers) < 16 * 1024  # no error per item of a huge batch
    assert world.stored_events() == before


INVALID_NHS = (
    "943 476 5918",  # the check digit does not match
    "1000000010",  # the check digit would be 10: no valid number starts so
    "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # Arabic-Indic digits
    "943476591",
    "94347659190",
    "943-476-5919",
)


def test_invalid_nhs_numbers_are_refused_and_never_echoed(world: World, attacks: Attacks) -> None:
    member = world.members["nhft"]
    before = world.stored_events()
    refused = 0
    for number in INVALID_NHS:
        child = {"nhs_number": number, "given_name": "Avery"}
        answer = world.post_events(member, event("raised", raised_data("nhft", child=child)))
        digits = re.sub(r"\D", "", number)
        echoed = number in answer.text or (digits and digits in re.sub(r"\D", "", answer.text))
        named = "nhs_number" in answer.text
        refused += _problem(answer, 422) and named and not echoed and "Avery" not in answer.text
    attacks.record(
        "limits",
        "invalid NHS numbers (mod 11, digits, format)",
        tried=len(INVALID_NHS),
        refused=refused,
    )
    assert refused == len(INVALID_NHS)
    assert world.stored_events() == before


@pending("gateway.api.ratelimit", "each connector's event intake must be rate limited (429)")
def test_a_connector_flooding_the_hub_gets_429_while_others_are_served(
    world: World, attacks: Attacks
) -> None:
    flooder, other = world.members[OUTSIDER], world.members["nhft"]
    url = f"/v1/connectors/{flooder.connector_id}/events"
    headers = {"content-type": "application/json", "webhook-id": "msg_flood"}
    answers = [world.http().post(url, content=b"[]", headers=headers) for _ in range(120)]
    limited = [a for a in answers if a.status_code == 429]
    refused = sum(a.status_code in (401, 429) for a in answers)  # unsigned: 401 until limited
    note = f"{len(limited)} answered 429"
    attacks.record(
        "limits",
        "120 requests at once from one connector",
        tried=len(answers),
        refused=refused,
        note=note,
    )
    assert limited, "no request was rate limited"
    assert all(_problem(a, 429) and a.headers.get("retry-after") for a in limited)
    assert world.post_events(other, discussion("nhft", world.escalation_id)).status_code == 202


def _signed_xml(secret: str, body: bytes) -> dict[str, str]:
    headers = sign([secret], f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
    return {**headers, "content-type": "application/xml"}
