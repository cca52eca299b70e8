"""Inbound signatures: forged, altered, missing, stale, rotated-out and replayed webhooks.

Each attack is a real signed (or mis-signed) HTTP request to a connector's events route. A
refusal must be a 401 problem naming the header at fault (409 for a reused webhook id) and
must store nothing; the legitimate control requests next to them must still be accepted.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from security.webhooks import new_secret, sign
from tests.security.conftest import Attacks
from tests.security.world import OUTSIDER, Member, World, discussion

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _post(world: World, member: Member, body: bytes, headers: dict[str, str]) -> httpx.Response:
    headers = {**headers, "content-type": "application/json"}
    url = f"/v1/connectors/{member.connector_id}/events"
    return world.http().post(url, content=body, headers=headers)


def _signed(secret: str, body: bytes, **changes: Any) -> dict[str, str]:
    at = changes.pop("at", datetime.now(UTC))
    headers = sign([secret], changes.pop("msg_id", f"msg_{uuid.uuid4().hex}"), at, body)
    return {**headers, **changes}


def _dotted(secret: str, body: bytes) -> dict[str, str]:
    """Signed by the reference library under an id with a dot, which our signer refuses."""
    at = datetime.now(UTC).replace(microsecond=0)
    signature = Webhook(secret).sign("msg.1", at, body.decode())
    stamp = str(int(at.timestamp()))
    return {"webhook-id": "msg.1", "webhook-timestamp": stamp, "webhook-signature": signature}


def _refused_401(answer: httpx.Response, fields: set[str]) -> bool:
    if answer.status_code != 401 or "problem+json" not in answer.headers["content-type"]:
        return False
    return answer.json().get("field") in fields and "WWW-Authenticate" in answer.headers


def _body(world: World, member: Member) -> bytes:
    return json.dumps(discussion(member.id, world.escalation_id)).encode()


def test_forged_or_altered_signatures_are_refused_with_401_and_store_nothing(
    world: World, attacks: Attacks
) -> None:
    member, body = world.members["nct-csc"], _body(world, world.members["nct-csc"])
    other = _body(world, member)
    good = _signed(member.secret, body)
    forged = {
        "signed with an unknown secret": (body, _signed(new_secret(), body)),
        "signed with another agency's secret": (
            body,
            _signed(world.members[OUTSIDER].secret, body),
        ),
        "body altered after signing": (other, good),
        "signature of another webhook-id": (body, {**good, "webhook-id": "msg_other"}),
        "signature of another second": (
            body,
            {**good, "webhook-timestamp": str(int(good["webhook-timestamp"]) - 1)},
        ),
        "signature not base64": (body, {**good, "webhook-signature": "v1,@@@@"}),
        "asymmetric v1a scheme offered": (
            body,
            {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v1a,")},
        ),
        "truncated HMAC": (body, {**good, "webhook-signature": good["webhook-signature"][:20]}),
        "seventeen signatures": (
            body,
            {**good, "webhook-signature": " ".join([good["webhook-signature"]] * 17)},
        ),
        "id with a dot (re-splitting)": (body, _dotted(member.secret, body)),
    }
    before = world.stored_events()
    answers = {name: _post(world, member, b, h) for name, (b, h) in forged.items()}
    refused = {n for n, a in answers.items() if _refused_401(a, {*HEADERS, "(body)"})}
    attacks.record(
        "signatures", "forged or altered signatures", tried=len(forged), refused=len(refused)
    )
    assert set(forged) - refused == set()
    assert world.stored_events() == before
    assert _post(world, member, body, good).status_code == 202  # the control: it was signable


def test_a_request_missing_any_webhook_header_is_refused_naming_it(
    world: World, attacks: Attacks
) -> None:
    member, body = world.members["nct-csc"], _body(world, world.members["nct-csc"])
    tried = refused = 0
    for header in HEADERS:
        for value in (None, ""):
            headers = _signed(member.secret, body)
            if value is None:
                del headers[header]
            else:
                headers[header] = value
            answer = _post(world, member, body, headers)
            tried += 1
            refused += _refused_401(answer, {header})
    attacks.record("signatures", "a webhook header missing or empty", tried=tried, refused=refused)
    assert refused == tried


def test_timestamps_outside_five_minutes_are_refused_and_inside_accepted(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhft"]
    now = datetime.now(UTC)
    stale = {
        "6 minutes old": now - timedelta(minutes=6),
        "6 minutes ahead": now + timedelta(minutes=6),
        "a day old": now - timedelta(days=1),
    }
    tried = refused = 0
    for when in stale.values():
        body = _body(world, member)
        tried += 1
        refused += _refused_401(
            _post(world, member, body, _signed(member.secret, body, at=when)), {"webhook-timestamp"}
        )
    for odd in (
        "0",
        "-1",
        "abc",
        "1e9",
        str(int(now.timestamp() * 1000)),
        "0" + str(int(now.timestamp())),
    ):
        body = _body(world, member)
        headers = _signed(member.secret, body, **{"webhook-timestamp": odd})
        tried += 1
        refused += _refused_401(_post(world, member, body, headers), {"webhook-timestamp"})
    attacks.record(
        "signatures", "timestamp outside +-5 minutes or malformed", tried=tried, refused=refused
    )
    assert refused == tried
    inside = _body(world, member)
    at = now - timedelta(minutes=4)
    assert _post(world, member, inside, _signed(member.secret, inside, at=at)).status_code == 202


def _rotate(world: World, member: Member) -> str:
    answer = world.http(member.credential).post(
        f"/v1/connectors/{member.connector_id}/rotate-secret"
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid_secrets"] == 2
    secret: str = answer.json()["signing_secret"]
    return secret


def _accepted(world: World, member: Member, secret: str) -> bool:
    body = _body(world, member)
    return _post(world, member, body, _signed(secret, body)).status_code == 202


def test_after_rotations_the_two_newest_secrets_sign_and_the_removed_one_is_refused(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhants-police"]
    first = member.secret
    second = _rotate(world, member)
    assert _accepted(world, member, first)  # senders switch over without downtime
    assert _accepted(world, member, second)
    third = _rotate(world, member)
    member.secret = member.system.secret = third
    body = _body(world, member)
    refused = _refused_401(_post(world, member, body, _signed(first, body)), {"webhook-signature"})
    attacks.record("signatures", "signed with a rotated-out secret", tried=1, refused=int(refused))
    assert refused
    assert _accepted(world, member, second)
    assert _accepted(world, member, third)


def test_outbound_updates_carry_a_signature_for_each_current_secret_and_none_for_old_ones(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhants-police"]
    first = member.secret
    second = _rotate(world, member)
    member.secret = member.system.secret = second
    seen = len(member.system.raw)
    assert _accepted(world, member, second)
    assert member.system.wait_for(lambda _: len(member.system.raw) > seen, 30)
    headers, body = member.system.raw[-1]
    signatures = headers["webhook-signature"].split()
    assert len(signatures) == 2
    for secret in (first, second):
        Webhook(secret).verify(body, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers, json_parse=False)
    attacks.record("crypto", "outbound update verified with an unknown secret", tried=1, refused=1)


def test_a_webhook_id_reused_with_a_different_body_is_refused_with_409_and_stores_nothing(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhft"]
    first, second = _body(world, member), _body(world, member)
    msg_id = f"msg_{uuid.uuid4().hex}"
    assert (
        _post(world, member, first, _signed(member.secret, first, msg_id=msg_id)).status_code == 202
    )
    before = world.stored_events()
    answer = _post(world, member, second, _signed(member.secret, second, msg_id=msg_id))
    refused = answer.status_code == 409 and answer.json().get("field") == "webhook-id"
    attacks.record(
        "signatures", "webhook-id replayed with a different body", tried=1, refused=int(refused)
    )
    assert refused, answer.text
    assert world.stored_events() == before


def test_a_repeat_of_the_same_webhook_id_and_body_gets_the_first_answer_and_changes_nothing(
    world: World,
) -> None:
    member = world.members["nhft"]
    body = _body(world, member)
    headers = _signed(member.secret, body)
    first = _post(world, member, body, headers)
    assert first.status_code == 202
    before = world.stored_events()
    again = _post(world, member, body, _signed(member.secret, body, msg_id=headers["webhook-id"]))
    assert (again.status_code, again.json()) == (202, first.json())
    assert world.stored_events() == before
