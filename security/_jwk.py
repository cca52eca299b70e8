"""JWK policy for envelopes: which keys are accepted, checked before joserfc sees them."""

import base64
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from security.errors import KeyMaterialError

__all__ = [
    "EC_ALG",
    "EC_CURVES",
    "MIN_RSA_BITS",
    "RSA_ALG",
    "RecipientKey",
    "private_key",
    "public_key",
    "validate_public_jwk",
]

KeyType = Literal["RSA", "EC"]
RSA_ALG: Final = "RSA-OAEP-256"
EC_ALG: Final = "ECDH-ES+A256KW"
MIN_RSA_BITS: Final = 2048
EC_CURVES: Final = ("P-256", "P-384")
_ALG_FOR: Final[dict[KeyType, str]] = {"RSA": RSA_ALG, "EC": EC_ALG}
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_RSA_CRT: Final = ("p", "q", "dp", "dq", "qi")
_OPS_FOR: Final[dict[tuple[KeyType, bool], frozenset[str]]] = {
    ("RSA", False): frozenset({"encrypt", "wrapKey"}),
    ("RSA", True): frozenset({"decrypt", "unwrapKey"}),
    ("EC", False): frozenset({"deriveKey", "deriveBits"}),
    ("EC", True): frozenset({"deriveKey", "deriveBits"}),
}
_KID = re.compile(r"[\x21-\x7e]{1,128}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ADVICE: Final = "use an RSA key of at least 2048 bits or an EC key on P-256 or P-384"


@dataclass(frozen=True)
class RecipientKey:
    """An accepted key, the JWE alg it implies, and its kid (the key itself is never shown)."""

    key: RSAKey | ECKey = field(repr=False)
    alg: str
    kid: str | None


def validate_public_jwk(jwk: Mapping[str, Any]) -> None:
    """Check a public JWK at registration; raise KeyMaterialError saying what to fix."""
    public_key(jwk)


def public_key(jwk: Mapping[str, Any]) -> RecipientKey:
    """Accept a public encryption JWK, refusing private members, weak keys and other types.

    Every envelope names its recipient's key, so an accepted key is kept by its canonical
    JSON (a few hundred keys at most): importing it costs a sixth of an encryption. A key
    that is refused is checked again each time (nothing refused is remembered)."""
    try:
        text = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON at all: the checks say what is wrong
        return _public_key(jwk)
    return _public_key_of(text)


@functools.lru_cache(maxsize=1024)
def _public_key_of(text: str) -> RecipientKey:
    return _public_key(json.loads(text))


def _public_key(jwk: Mapping[str, Any]) -> RecipientKey:
    kty = _key_type(jwk)
    present = [name for name in _PRIVATE_MEMBERS if name in jwk]
    if present:
        raise KeyMaterialError(
            f"this JWK contains private key members ({', '.join(present)}): register only the "
            "public key, and generate a new key pair because this private key has been shared"
        )
    return _accept(jwk, kty, private=False)


def private_key(jwk: Mapping[str, Any]) -> RecipientKey:
    """Accept a private decryption JWK under the same policy as public ones."""
    kty = _key_type(jwk)
    if "d" not in jwk:
        raise KeyMaterialError(
            "this JWK has no private member 'd': decryption needs the private key"
        )
    return _accept(jwk, kty, private=True)


def _key_type(jwk: Mapping[str, Any]) -> KeyType:
    if not isinstance(jwk, Mapping):
        raise KeyMaterialError("a JWK must be a JSON object")
    kty = jwk.get("kty")
    if kty == "RSA" or kty == "EC":
        return cast(KeyType, kty)
    if kty == "oct":
        raise KeyMaterialError(f"symmetric ('oct') keys are refused: {_ADVICE}")
    raise KeyMaterialError(f"'kty' is missing or not supported: {_ADVICE}")


def _accept(jwk: Mapping[str, Any], kty: KeyType, *, private: bool) -> RecipientKey:
    kid = _check_intent(jwk, kty, private=private)
    members = _rsa_members(jwk, private=private) if kty == "RSA" else _ec_members(jwk, private)
    try:
        key = RSAKey.import_key(members) if kty == "RSA" else ECKey.import_key(members)
    except (JoseError, ValueError, TypeError):
        # from None: the underlying error may describe key numbers.
        raise KeyMaterialError(
            f"the {kty} key's numbers do not form a valid key; export the key again"
        ) from None
    return RecipientKey(key=key, alg=_ALG_FOR[kty], kid=kid)


def _check_intent(jwk: Mapping[str, Any], kty: KeyType, *, private: bool) -> str | None:
    if jwk.get("use", "enc") != "enc":
        raise KeyMaterialError(
            "'use' must be 'enc' (or absent): generate a separate encryption key"
        )
    if jwk.get("alg", _ALG_FOR[kty]) != _ALG_FOR[kty]:
        raise KeyMaterialError(f"'alg' of an {kty} key must be '{_ALG_FOR[kty]}' (or absent)")
    ops = jwk.get("key_ops")
    if ops is not None:
        wanted = _OPS_FOR[(kty, private)]
        offered = {op for op in ops if isinstance(op, str)} if isinstance(ops, list) else set()
        if not wanted & offered:
            raise KeyMaterialError(f"'key_ops' must include one of {sorted(wanted)} (or be absent)")
    kid = jwk.get("kid")
    if kid is not None and not (isinstance(kid, str) and _KID.fullmatch(kid)):
        raise KeyMaterialError("'kid' must be 1-128 printable ASCII characters without spaces")
    return kid


def _rsa_members(jwk: Mapping[str, Any], *, private: bool) -> dict[str, str | list[str]]:
    names = ("n", "e", "d", *_RSA_CRT) if private else ("n", "e")
    required = ("n", "e", "d") if private else ("n", "e")
    members = _b64_members(jwk, names, required)
    bits = int.from_bytes(_b64decode(str(members["n"])), "big").bit_length()
    if bits < MIN_RSA_BITS:
        raise KeyMaterialError(
            f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are required: "
            "generate a new key of 3072 bits"
        )
    return {"kty": "RSA", **members}


def _ec_members(jwk: Mapping[str, Any], private: bool) -> dict[str, str | list[str]]:
    crv = jwk.get("crv")
    if crv not in EC_CURVES:
        raise KeyMaterialError(f"'crv' must be one of {', '.join(EC_CURVES)}: {_ADVICE}")
    names = ("x", "y", "d") if private else ("x", "y")
    return {"kty": "EC", "crv": cast(str, crv), **_b64_members(jwk, names, names)}


def _b64_members(
    jwk: Mapping[str, Any], names: tuple[str, ...], required: tuple[str, ...]
) -> dict[str, str | list[str]]:
    members: dict[str, str | list[str]] = {}
    for name in names:
        value = jwk.get(name)
        if value is None:
            if name in required:
                raise KeyMaterialError(f"this JWK is missing its '{name}' member")
            continue
        if not (isinstance(value, str) and _B64URL.fullmatch(value) and len(value) % 4 != 1):
            raise KeyMaterialError(f"'{name}' must be a base64url string without padding")
        members[name] = value
    return members


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
