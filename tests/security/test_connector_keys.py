"""Connector keys at registration: the hub only ever accepts a sound public encryption key.

Private keys (which would mean the agency shared its secret), weak or malformed RSA keys, EC
keys off the allowed curves or off their curve, symmetric keys and keys meant for signing are
refused with a 422 problem naming ``public_jwk``, never echoing key material, creating nothing.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.errors import SecurityWarning
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from gateway.store.models import Connector
from security.envelopes import generate_recipient_key
from tests.security.conftest import Attacks
from tests.security.world import World, running_world


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with running_world(raise_escalation=False) as built:
        yield built


def _b64(number: int, size: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(size, "big")).rstrip(b"=").decode()


def _rsa_public(bits: int, **changes: Any) -> dict[str, Any]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # a weak key, made on purpose
        key = RSAKey.import_key(private.public_key())
    return {**dict(key.as_dict(private=False)), **changes}


def _ec_public(curve: ec.EllipticCurve) -> dict[str, Any]:
    private = ec.generate_private_key(curve)
    numbers = private.public_key().public_numbers()
    size = (curve.key_size + 7) // 8
    name = {"secp521r1": "P-521", "secp256k1": "secp256k1"}[curve.name]
    return {"kty": "EC", "crv": name, "x": _b64(numbers.x, size), "y": _b64(numbers.y, size)}


def hostile_keys() -> dict[str, Any]:
    """JWKs an agency must not be able to register, by what is wrong with them."""
    ec_private, ec_public = generate_recipient_key("EC")
    rsa_private, _ = generate_recipient_key("RSA")
    y = int.from_bytes(base64.urlsafe_b64decode(ec_public["y"] + "=="), "big")
    off_curve = {**ec_public, "y": _b64(y ^ 1, 32)}
    return {
        "EC private key (d)": ec_private,
        "RSA private key (d, p, q...)": rsa_private,
        "public key with a stray 'd'": {**ec_public, "d": ec_private["d"]},
        "RSA 1024 bits": _rsa_public(1024),
        "RSA 1536 bits": _rsa_public(1536),
        "RSA exponent 1": _rsa_public(2048, e="AQ"),
        "RSA even exponent": _rsa_public(2048, e="Ag"),
        "EC point not on the curve": off_curve,
        "EC on P-521": _ec_public(ec.SECP521R1()),
        "EC on secp256k1": _ec_public(ec.SECP256K1()),
        "symmetric (oct) key": {"kty": "oct", "k": _b64(7, 32)},
        "OKP X25519 key": {"kty": "OKP", "crv": "X25519", "x": _b64(9, 32)},
        "key for signing (use sig)": {**ec_public, "use": "sig"},
        "declared for RSA1_5": {**_rsa_public(2048), "alg": "RSA1_5"},
        "not an object": ["not", "a", "key"],
    }


def _connectors(world: World) -> int:
    assert world.stack.hub is not None
    with world.stack.hub.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Connector)) or 0)


def test_private_weak_and_malformed_connector_keys_are_refused_at_registration(
    world: World, attacks: Attacks
) -> None:
    member = world.members["nhft"]
    client = world.http(member.credential)
    before = _connectors(world)
    keys = hostile_keys()
    refused = 0
    for key in keys.values():
        body = {"kind": "generic", "callback_url": member.system.url, "public_jwk": key}
        answer = client.post(f"/v1/agencies/{member.id}/connectors", json=body)
        secret = key.get("d") if isinstance(key, dict) else None
        problem = answer.json() if answer.status_code == 422 else {}
        named = problem.get("field") == "public_jwk" or any(
            e.get("field", "").startswith("public_jwk") for e in problem.get("errors") or []
        )
        refused += named and (secret is None or secret not in answer.text)
    attacks.record(
        "crypto",
        "registering private, weak or malformed connector keys",
        tried=len(keys),
        refused=refused,
    )
    assert refused == len(keys)
    assert _connectors(world) == before


def test_a_sound_rsa_or_ec_public_key_is_accepted(world: World) -> None:
    member = world.members["nhft"]
    client = world.http(member.credential)
    for public in (generate_recipient_key("EC")[1], generate_recipient_key("RSA")[1]):
        body = {"kind": "generic", "callback_url": member.system.url, "public_jwk": public}
        answer = client.post(f"/v1/agencies/{member.id}/connectors", json=body)
        assert answer.status_code == 201, answer.text
