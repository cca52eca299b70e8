"""Payload encryption end to end: real deliveries, captured raw at each agency's case system.

Each agency decrypts only its own updates; a second delivery of the same update has a fresh
content key and IV; any altered byte of any JWE segment is detected; tokens naming
algorithms off the allow-list are refused; and connector keys that are private, weak, on the
wrong curve or not keys at all are refused at registration.
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwe
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from security import envelopes
from security.errors import DecryptionError, DisallowedAlgorithm
from tests.security.conftest import Attacks
from tests.security.world import PARTIES, World, event, raised_data


def _tokens(world: World, agency_id: str) -> list[str]:
    return [body.decode() for _, body in world.members[agency_id].system.raw]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_each_agency_decrypts_its_own_updates_and_no_other_agencys(
    world: World, attacks: Attacks
) -> None:
    tried = refused = 0
    for owner in PARTIES:
        tokens = _tokens(world, owner)
        assert tokens, f"{owner} received no delivery"
        for token in tokens:
            envelopes.decrypt(world.members[owner].private_jwk, token)  # its own: decrypts
            for other in world.members.values():
                if other.id == owner:
                    continue
                tried += 1
                with pytest.raises(DecryptionError):
                    envelopes.decrypt(other.private_jwk, token)
                refused += 1
    attacks.record("crypto", "decrypting another agency's update", tried=tried, refused=refused)


def _dead_letter(world: World, timeout: float = 30) -> str:
    admin = world.http(world.stack.admin_token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = admin.get("/v1/dead-letters").json()["items"]
        if items:
            return str(items[0]["id"])
        time.sleep(0.05)
    raise AssertionError("no delivery became a dead letter")


def test_a_replayed_delivery_of_the_same_update_has_a_fresh_content_key_and_iv(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nct-csc"]
    member.system.fail_next.append(400)  # refused once: the update becomes a dead letter
    seen = len(member.system.raw)
    answer = world.post_events(world.members["nhft"], event("raised", raised_data("nhft")))
    assert answer.status_code == 202, answer.text
    delivery = _dead_letter(world)
    replayed = world.http(world.stack.admin_token).post(f"/v1/dead-letters/{delivery}/replay")
    assert replayed.status_code == 202, replayed.text
    assert member.system.wait_for(lambda _: len(member.system.raw) >= seen + 2, 30)
    (h1, first), (h2, second) = member.system.raw[seen : seen + 2]
    assert h1["webhook-id"] == h2["webhook-id"] == delivery  # the same update, twice
    plain = [envelopes.decrypt(member.private_jwk, t.decode())[0] for t in (first, second)]
    assert plain[0] == plain[1]
    a, b = first.decode().split("."), second.decode().split(".")
    fresh = [a[i] != b[i] for i in (0, 1, 2, 3, 4)]  # epk, wrapped key, IV, ciphertext, tag
    attacks.record(
        "crypto", "same update delivered twice reuses key or IV", tried=1, refused=int(all(fresh))
    )
    assert all(fresh)


def test_no_content_key_or_iv_repeats_across_every_delivery(world: World, attacks: Attacks) -> None:
    tokens = [t for m in world.members.values() for t in _tokens(world, m.id)]
    keys = [t.split(".")[1] for t in tokens]
    ivs = [t.split(".")[2] for t in tokens]
    attacks.record(
        "crypto",
        "content key or IV reused across deliveries",
        tried=len(tokens),
        refused=len(set(ivs)),
    )
    assert len(tokens) >= 3
    assert len(set(keys)) == len(set(ivs)) == len(tokens)


def _flips(token: str) -> Iterator[str]:
    """The token with one bit flipped, for every byte of every segment."""
    segments = token.split(".")
    for index, segment in enumerate(segments):
        raw = _unb64(segment)
        for position in range(len(raw)):
            changed = bytearray(raw)
            changed[position] ^= 0x01
            yield ".".join([*segments[:index], _b64(bytes(changed)), *segments[index + 1 :]])


def test_flipping_any_byte_of_any_segment_fails_decryption(world: World, attacks: Attacks) -> None:
    member = world.members["nhants-police"]
    token = _tokens(world, member.id)[0]
    tried = refused = 0
    for altered in _flips(token):
        tried += 1
        try:
            envelopes.decrypt(member.private_jwk, altered)
        except DecryptionError:
            refused += 1
    other = _tokens(world, "nhft")[0].split(".")
    mixed = [".".join([*token.split(".")[:3], *other[3:]]), ".".join([*token.split(".")[:4], ""])]
    for altered in mixed:
        tried += 1
        try:
            envelopes.decrypt(member.private_jwk, altered)
        except DecryptionError:
            refused += 1
    attacks.record(
        "crypto",
        "one byte flipped in any JWE segment, or segments swapped",
        tried=tried,
        refused=refused,
    )
    assert refused == tried


def _forged(header: dict[str, Any]) -> str:
    """A compact JWE with this protected header and random-looking other parts."""
    parts = [json.dumps(header).encode(), b"k" * 40, b"i" * 12, b"c" * 32, b"t" * 16]
    return ".".join(_b64(p) for p in parts)


def _with_registry(alg: str, enc: str, key: Any) -> str:
    """A real token by joserfc with ``alg`` and ``enc`` allowed (deprecated ones too)."""
    registry = jwe.JWERegistry(algorithms=[alg, enc])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # the attacker uses RSA1_5 on purpose
        return jwe.encrypt_compact(
            {"alg": alg, "enc": enc}, b'{"stage": 5}', key, registry=registry
        )


def _hostile_tokens(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tokens with algorithms off the allow-list, other malformed tokens): name -> (key, token)."""
    ec = world.members["nhft"].private_jwk
    rsa_private, rsa_public = envelopes.generate_recipient_key("RSA")
    rsa = RSAKey.import_key(rsa_public)
    ec_public = ECKey.import_key(world.members["nhft"].public_jwk)
    disallowed = {
        "alg none": (ec, _forged({"alg": "none", "enc": "A256GCM"})),
        "alg dir": (ec, _with_registry("dir", "A256GCM", OctKey.generate_key(256))),
        "alg RSA1_5": (rsa_private, _with_registry("RSA1_5", "A256GCM", rsa)),
        "alg RSA-OAEP (SHA-1)": (rsa_private, _with_registry("RSA-OAEP", "A256GCM", rsa)),
        "alg ECDH-ES (direct)": (ec, _with_registry("ECDH-ES", "A256GCM", ec_public)),
        "enc A128CBC-HS256": (ec, _with_registry("ECDH-ES+A256KW", "A128CBC-HS256", ec_public)),
        "enc A128GCM": (ec, _with_registry("ECDH-ES+A128KW", "A128GCM", ec_public)),
        "compressed (zip)": (
            ec,
            _forged({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF"}),
        ),
    }
    odd = {
        "critical extension": (
            ec,
            _forged({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "crit": ["x"]}),
        ),
        "RSA alg sent to an EC key": (ec, _with_registry("RSA-OAEP-256", "A256GCM", rsa)),
        "not five segments": (ec, "a.b.c"),
        "padded base64": (ec, _tokens(world, "nhft")[0] + "=="),
    }
    return disallowed, odd


def test_tokens_naming_algorithms_off_the_allow_list_are_refused(
    world: World, attacks: Attacks
) -> None:
    disallowed, odd = _hostile_tokens(world)
    refused = 0
    for key, token in disallowed.values():
        with pytest.raises(DisallowedAlgorithm):
            envelopes.decrypt(key, token)
        refused += 1
    for key, token in odd.values():
        with pytest.raises(DecryptionError):
            envelopes.decrypt(key, token)
        refused += 1
    tried = len(disallowed) + len(odd)
    attacks.record(
        "crypto",
        "JWE with alg none/dir/RSA1_5 and other disallowed forms",
        tried=tried,
        refused=refused,
    )
