"""Per-recipient JWE envelopes (compact serialisation) with an allow-list of algorithms.

Key management is RSA-OAEP-256 for RSA keys (2048 bits or more) or ECDH-ES+A256KW for EC
keys on P-256/P-384; content encryption is A256GCM only. Every message gets a fresh random
content key, so two encryptions of the same plaintext differ.
"""

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from security import _jwk
from security._jwk import EC_ALG, RSA_ALG, validate_public_jwk
from security.errors import DecryptionError, DisallowedAlgorithm, KeyMaterialError

__all__ = [
    "ALLOWED_ALGS",
    "ALLOWED_ENCS",
    "ENC",
    "MAX_PLAINTEXT_BYTES",
    "decrypt",
    "encrypt_for",
    "generate_recipient_key",
    "read_header",
    "validate_public_jwk",
]

ENC: Final = "A256GCM"
ALLOWED_ALGS: Final = frozenset({RSA_ALG, EC_ALG})
ALLOWED_ENCS: Final = frozenset({ENC})
MAX_PLAINTEXT_BYTES: Final = 1024 * 1024
_RSA_GENERATED_BITS: Final = 3072
_MAX_HEADER_CHARS: Final = 1024
_CTY = re.compile(r"[\x21-\x7e]{1,127}")
_NAME = re.compile(r"[A-Za-z0-9+_.-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_JOSE_FAILURES: Final = (JoseError, InvalidTag, ValueError, TypeError, KeyError, AssertionError)


def _b64_chars(size: int) -> int:
    return (4 * size + 2) // 3


def _make_registry() -> jwe.JWERegistry:
    registry = jwe.JWERegistry(algorithms=[*sorted(ALLOWED_ALGS), *sorted(ALLOWED_ENCS)])
    registry.max_ciphertext_length = _b64_chars(MAX_PLAINTEXT_BYTES)
    return registry


_REGISTRY: Final = _make_registry()
_MAX_TOKEN_CHARS: Final = _b64_chars(MAX_PLAINTEXT_BYTES) + 4096


def encrypt_for(
    public_jwk: Mapping[str, Any], plaintext: bytes, *, content_type: str = "application/json"
) -> str:
    """Encrypt plaintext for the holder of one public JWK; returns a compact JWE."""
    recipient = _jwk.public_key(public_jwk)
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext is larger than {MAX_PLAINTEXT_BYTES} bytes")
    if not _CTY.fullmatch(content_type):
        raise ValueError("content_type must be 1-127 printable ASCII characters")
    header: dict[str, Any] = {"alg": recipient.alg, "enc": ENC, "cty": content_type}
    if recipient.kid is not None:
        header["kid"] = recipient.kid
    try:
        return jwe.encrypt_compact(header, plaintext, recipient.key, registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise KeyMaterialError("the recipient key could not be used for encryption") from exc


def decrypt(private_jwk: Mapping[str, Any], token: str) -> tuple[bytes, dict[str, Any]]:
    """Decrypt a compact JWE with a private JWK; returns (plaintext, protected header)."""
    header = read_header(token)
    recipient = _jwk.private_key(private_jwk)
    if header["alg"] != recipient.alg:
        raise DecryptionError(
            f"the token uses {header['alg']}, so it was not encrypted for this key"
        )
    kid = header.get("kid")
    if kid is not None and recipient.kid is not None and kid != recipient.kid:
        raise DecryptionError("the token names a different key id (kid); use the matching key")
    try:
        result = jwe.decrypt_compact(token, recipient.key, registry=_REGISTRY)
    except _JOSE_FAILURES as exc:
        raise DecryptionError(
            "the token cannot be decrypted with this key: it was encrypted for another key "
            "or has been altered"
        ) from exc
    if result.plaintext is None:
        raise DecryptionError("the token carries no plaintext")
    return result.plaintext, dict(result.protected)


def read_header(token: str) -> dict[str, Any]:
    """Return a compact JWE's protected header, refusing algorithms off the allow-list."""
    if not isinstance(token, str) or not token.isascii() or len(token) > _MAX_TOKEN_CHARS:
        raise DecryptionError(f"a token must be ASCII text of at most {_MAX_TOKEN_CHARS} chars")
    segments = token.split(".")
    if len(segments) != 5:
        raise DecryptionError("the token is not a compact JWE: it needs 5 dot-separated parts")
    if not all(_is_canonical(segment) for segment in segments):
        raise DecryptionError("the token's parts are not canonical base64url")
    header = _decode_header(segments[0])
    alg, enc = header.get("alg"), header.get("enc")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
        raise DisallowedAlgorithm(
            f"JWE alg {_shown(alg)} is refused; allowed: {', '.join(sorted(ALLOWED_ALGS))}"
        )
    if not isinstance(enc, str) or enc not in ALLOWED_ENCS:
        raise DisallowedAlgorithm(f"JWE enc {_shown(enc)} is refused; allowed: {ENC}")
    if "zip" in header:
        raise DisallowedAlgorithm("compressed JWE ('zip') is refused")
    if "crit" in header:
        raise DecryptionError("JWE critical extensions ('crit') are not supported")
    return header


def generate_recipient_key(
    kind: Literal["EC", "RSA"] = "EC",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Generate an encryption key pair as (private JWK, public JWK to register)."""
    key: ECKey | RSAKey
    if kind == "EC":
        key = ECKey.generate_key("P-256", {"use": "enc", "alg": EC_ALG}, auto_kid=True)
    elif kind == "RSA":
        key = RSAKey.generate_key(
            _RSA_GENERATED_BITS, {"use": "enc", "alg": RSA_ALG}, auto_kid=True
        )
    else:
        raise ValueError("kind must be 'EC' or 'RSA'")
    return dict(key.as_dict(private=True)), dict(key.as_dict(private=False))


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _is_canonical(segment: str) -> bool:
    """True if segment is unpadded base64url that re-encodes to itself (no spare bits set)."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        return False
    return base64.urlsafe_b64encode(_b64decode(segment)).rstrip(b"=").decode() == segment


def _decode_header(segment: str) -> dict[str, Any]:
    if not segment or len(segment) > _MAX_HEADER_CHARS:
        raise DecryptionError("the token's protected header is missing or too long")
    try:
        header = json.loads(_b64decode(segment))
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("the token's protected header is not base64url JSON") from exc
    if not isinstance(header, dict):
        raise DecryptionError("the token's protected header is not a JSON object")
    return header


def _shown(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) and _NAME.fullmatch(value) else "(missing/odd)"
