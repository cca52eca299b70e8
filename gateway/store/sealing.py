"""Sealing: JSON documents encrypted at rest under the key ring, bound to their row."""

from __future__ import annotations

import json
from typing import Any

from security.keyring import KeyRing

__all__ = ["Sealer"]


class Sealer:
    """Encrypts what the database must never hold in clear (identifiers, narratives)."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def seal(self, document: Any, *, context: str) -> bytes:
        """Encrypt a JSON-able document; ``context`` (e.g. the row id) is authenticated."""
        raw = json.dumps(document, separators=(",", ":"), sort_keys=True, default=str)
        return self._ring.encrypt(raw.encode(), aad=context.encode())

    def unseal(self, blob: bytes, *, context: str) -> Any:
        return json.loads(self._ring.decrypt(blob, aad=context.encode()))

    def seal_bytes(self, data: bytes, *, context: str) -> bytes:
        return self._ring.encrypt(data, aad=context.encode())

    def unseal_bytes(self, blob: bytes, *, context: str) -> bytes:
        return self._ring.decrypt(blob, aad=context.encode())
