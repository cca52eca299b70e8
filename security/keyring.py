"""At-rest encryption with a key ring: AES-256-GCM, random 96-bit nonces, key id in each blob.

Blob (version 1): 0x01 | key id length (1 byte) | key id (ASCII) | nonce (12) | ciphertext+tag.
The header before the nonce is authenticated together with the caller's `aad`, so a blob
cannot be moved to another key id or format. Random nonces allow about 2**32 encryptions
per key: rotate well before that. Keys and plaintext never appear in errors or reprs.
"""

import base64
import binascii
import re
from collections.abc import Mapping
from os import urandom
from typing import Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from security.errors import DecryptionError, KeyMaterialError

__all__ = ["KEY_BYTES", "KeyRing", "generate_key"]

KEY_BYTES: Final = 32
_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def generate_key() -> bytes:
    """Return a new random 32-byte AES-256 key."""
    return urandom(KEY_BYTES)


class KeyRing:
    """Named 32-byte keys: the active one encrypts, every one decrypts."""

    __slots__ = ("_active", "_ciphers", "_keys")

    def __init__(self, keys: Mapping[str, bytes], *, active: str) -> None:
        """Check and hold the keys; prefer from_keys or from_env_string."""
        if not keys:
            raise KeyMaterialError("a key ring needs at least one key")
        for key_id, key in keys.items():
            _check_key_id(key_id)
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyMaterialError(f"key '{key_id}' must be {KEY_BYTES} bytes (AES-256)")
        if active not in keys:
            raise KeyMaterialError("the active key id is not one of the ring's key ids")
        self._keys = dict(keys)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in self._keys.items()}
        self._active = active

    @classmethod
    def from_keys(cls, keys: Mapping[str, bytes], *, active: str) -> Self:
        """Build a ring from {key id: 32-byte key}; `active` names the encrypting key."""
        return cls(keys, active=active)

    @classmethod
    def from_env_string(cls, value: str, *, active: str) -> Self:
        """Parse 'kid1:base64key,kid2:base64key' (standard base64, e.g. from the environment)."""
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(value.split(","), start=1):
            key_id, colon, encoded = (part.strip() for part in entry.partition(":"))
            # Errors name positions, never the text: a mis-ordered entry could hold a key.
            if not colon or not _KEY_ID.fullmatch(key_id):
                raise KeyMaterialError(f"key ring entry {position} must be 'key_id:base64key'")
            if key_id in keys:
                raise KeyMaterialError(f"key ring entry {position} repeats an earlier key id")
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyMaterialError(f"key ring entry {position}: key is not base64") from None
        return cls(keys, active=active)

    @property
    def active_key_id(self) -> str:
        """The id of the key that encrypts."""
        return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id in the ring, sorted."""
        return tuple(sorted(self._keys))

    def __repr__(self) -> str:
        """Show key ids only."""
        return f"KeyRing(active={self._active!r}, key_ids={self.key_ids!r})"

    def encrypt(self, plaintext: bytes, *, aad: bytes = b"") -> bytes:
        """Encrypt under the active key; `aad` (e.g. table and row id) must match on decrypt."""
        header = _header(self._active)
        nonce = urandom(_NONCE_BYTES)
        return header + nonce + self._ciphers[self._active].encrypt(nonce, plaintext, header + aad)

    def decrypt(self, blob: bytes, *, aad: bytes = b"") -> bytes:
        """Decrypt a blob made by any key in the ring, with the same `aad`."""
        key_id, start = _read_header(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"the blob is under key id '{key_id}', which this ring lacks")
        nonce, body = blob[start : start + _NONCE_BYTES], blob[start + _NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, body, blob[:start] + aad)
        except InvalidTag:
            raise DecryptionError("the blob failed authentication: wrong aad or altered") from None

    def needs_rotation(self, blob: bytes) -> bool:
        """True if the blob is encrypted under a key other than the active one."""
        return _read_header(blob)[0] != self._active

    def rotate(self, new_key_id: str, new_key: bytes) -> Self:
        """Return a new ring where new_key is active and every old key still decrypts."""
        if new_key_id in self._keys:
            raise KeyMaterialError("the new key id is already in the ring: choose a fresh id")
        return type(self)({**self._keys, new_key_id: new_key}, active=new_key_id)


def _check_key_id(key_id: str) -> None:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise KeyMaterialError("key ids must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-'")


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("ascii")
    return bytes((_VERSION, len(encoded))) + encoded


def _read_header(blob: bytes) -> tuple[str, int]:
    if len(blob) < 2 or blob[0] != _VERSION:
        raise DecryptionError("the blob is not in key ring format version 1")
    start = 2 + blob[1]
    if blob[1] == 0 or len(blob) < start + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("the blob is truncated")
    key_id = blob[2:start].decode("ascii", errors="replace")
    if not _KEY_ID.fullmatch(key_id):
        raise DecryptionError("the blob's key id is malformed")
    return key_id, start
