"""API credentials: a token shown once, and a salted hash stored in its place.

A token reads `{prefix}_{id}_{secret}`: the id is 16 hex characters (stored in clear, to find
the row), the secret 64 hex characters from 32 random bytes. With 256 bits of entropy the
secret cannot be guessed however fast the hash, so a slow KDF (scrypt, PBKDF2) would only add
latency to every request. The stored form is HMAC-SHA256 over the whole token keyed by a random
16-byte salt, written `sha256$<salt hex>$<digest hex>`, and compared in constant time.
"""

import hashlib
import hmac
import re
from secrets import token_bytes, token_hex
from typing import Final

from security.errors import CredentialError

__all__ = ["credential_id", "new_credential", "verify_credential"]

_SCHEME: Final = "sha256"
_SALT_BYTES: Final = 16
_PREFIX = re.compile(r"[a-z][a-z0-9]{1,15}")
_TOKEN = re.compile(r"([a-z][a-z0-9]{1,15})_([0-9a-f]{16})_([0-9a-f]{64})")
_STORED = re.compile(r"sha256\$([0-9a-f]{32})\$([0-9a-f]{64})")


def new_credential(prefix: str) -> tuple[str, str]:
    """Return (token to show once, hash to store), e.g. ('ehk_<id>_<secret>', 'sha256$...')."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("prefix must be 2-16 lower-case ASCII letters or digits, starting a-z")
    token = f"{prefix}_{token_hex(8)}_{token_hex(32)}"
    salt = token_bytes(_SALT_BYTES)
    return token, f"{_SCHEME}${salt.hex()}${_digest(token, salt).hex()}"


def verify_credential(token: str, stored_hash: str) -> bool:
    """True if token matches the stored hash; constant time in the secret."""
    stored = _STORED.fullmatch(stored_hash) if isinstance(stored_hash, str) else None
    if stored is None:
        raise CredentialError("the stored credential hash is not 'sha256$<salt>$<digest>'")
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        return False
    salt, expected = bytes.fromhex(stored[1]), bytes.fromhex(stored[2])
    return hmac.compare_digest(_digest(token, salt), expected)


def credential_id(token: str) -> str:
    """Return the token's id (to look up its row) without touching the secret."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise CredentialError("the credential is not in the form '<prefix>_<id>_<secret>'")
    return match[2]


def _digest(token: str, salt: bytes) -> bytes:
    return hmac.new(salt, token.encode("ascii"), hashlib.sha256).digest()
