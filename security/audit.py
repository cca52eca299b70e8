"""Hash-chain primitives for the tamper-evident audit log, and Ed25519-signed checkpoints.

Each link is `sha256(prev_hash + "\\n" + canonical JSON of the entry)` as lower-case hex; the
first link's prev_hash is GENESIS. A chain shows edits, insertions and deletions inside it,
but not a cut-off tail: sign the head (sequence number and hash) now and then as a checkpoint,
and keep the checkpoint where whoever can write the log cannot rewrite it.
"""

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from security.errors import KeyMaterialError

__all__ = [
    "GENESIS",
    "canonical_json",
    "chain_hash",
    "generate_checkpoint_key",
    "public_key_from_private",
    "sign_checkpoint",
    "verify_chain",
    "verify_checkpoint",
]

GENESIS: Final = "0" * 64
_HASH = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")
_CHECKPOINT_CONTEXT: Final = b"escalation-hub audit checkpoint v1\n"


def canonical_json(entry: Mapping[str, Any]) -> bytes:
    """Serialise an entry as UTF-8 JSON with sorted keys and no whitespace (no NaN/Infinity)."""
    return json.dumps(
        dict(entry), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def chain_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """Return the hex SHA-256 link of entry after prev_hash."""
    if not isinstance(prev_hash, str) or not _HASH.fullmatch(prev_hash):
        raise ValueError("prev_hash must be 64 lower-case hex characters")
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_json(entry)).hexdigest()


def verify_chain(
    entries: Iterable[tuple[Mapping[str, Any], str]], start: str = GENESIS
) -> int | None:
    """Return the index of the first (entry, stored hash) pair that breaks the chain, or None."""
    prev = start
    for index, (entry, stored) in enumerate(entries):
        if chain_hash(prev, entry) != stored:
            return index
        prev = stored
    return None


def generate_checkpoint_key() -> tuple[bytes, bytes]:
    """Return a new Ed25519 key pair as (32-byte private key, 32-byte public key)."""
    private = Ed25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def public_key_from_private(private_key_bytes: bytes) -> bytes:
    """The 32-byte Ed25519 public key to publish for verifying checkpoints."""
    try:
        key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
    except (ValueError, TypeError):
        raise KeyMaterialError("an Ed25519 private key must be 32 raw bytes") from None
    return key.public_key().public_bytes_raw()


def sign_checkpoint(private_key_bytes: bytes, seq: int, head_hash: str) -> str:
    """Sign (seq, head_hash) with Ed25519; returns the signature as unpadded base64url."""
    try:
        key = Ed25519PrivateKey.from_private_bytes(private_key_bytes)
    except (ValueError, TypeError):
        raise KeyMaterialError("an Ed25519 private key must be 32 raw bytes") from None
    message = _checkpoint_message(seq, head_hash)
    if message is None:
        raise ValueError("seq must be an int >= 0 and head_hash 64 lower-case hex characters")
    return base64.urlsafe_b64encode(key.sign(message)).rstrip(b"=").decode("ascii")


def verify_checkpoint(public_key_bytes: bytes, seq: int, head_hash: str, signature: str) -> bool:
    """True if signature is this key's checkpoint signature over (seq, head_hash)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(public_key_bytes)
    except (ValueError, TypeError):
        raise KeyMaterialError("an Ed25519 public key must be 32 raw bytes") from None
    message = _checkpoint_message(seq, head_hash)
    if message is None or not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        return False
    raw = base64.urlsafe_b64decode(signature + "==")
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != signature:
        return False  # non-canonical spare bits: one signature, one spelling
    try:
        key.verify(raw, message)
    except InvalidSignature:
        return False
    return True


def _checkpoint_message(seq: int, head_hash: str) -> bytes | None:
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    if not isinstance(head_hash, str) or not _HASH.fullmatch(head_hash):
        return None
    return _CHECKPOINT_CONTEXT + f"{seq}\n{head_hash}".encode("ascii")
