"""Editing the data key ring for ``escalation-hub keys``: the dev secrets file or new env values.

In development without ``EH_DATA_KEYS`` the ring lives in ``data_dir/dev-secrets.json`` and is
edited in place (atomically, mode 0600). Elsewhere the ring is the operator's: the new
``EH_DATA_KEYS`` / ``EH_DATA_KEY_ACTIVE`` values are written to a file of mode 0600, or to
stdout only when asked. Key material never reaches logs or error messages; ids only.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import Any, Final

from gateway.devsecrets import DEV_KEY_ID, FILE_NAME
from gateway.settings import PLACEHOLDER, Environment, Settings
from security.keyring import KeyRing, generate_key

__all__ = [
    "DevRing",
    "RingError",
    "add_key",
    "drop_key",
    "key_ids",
    "new_key_id",
    "ring_in_dev_file",
    "write_secret_file",
]

_MODE: Final = 0o600
_DEV_ID = re.compile(r"dev-([0-9]{1,9})")


class RingError(ValueError):
    """The ring cannot be changed as asked; the message says why and what to do."""


def ring_in_dev_file(settings: Settings) -> bool:
    """True when the ring is the development one in dev-secrets.json (no EH_DATA_KEYS)."""
    configured = settings.data_keys.get_secret_value() not in ("", PLACEHOLDER)
    return settings.environment is Environment.DEVELOPMENT and not configured


def key_ids(ring_text: str) -> list[str]:
    """The key ids of 'kid:base64key,...', in order (the text is checked first)."""
    ids = [entry.partition(":")[0].strip() for entry in ring_text.split(",")]
    KeyRing.from_env_string(ring_text, active=ids[0])  # refuses a malformed ring
    return ids


def new_key_id(existing: list[str], *, development: bool) -> str:
    """A fresh id: dev-N after the highest dev-N, else k<date>-<4 hex>."""
    if development:
        numbers = [int(m.group(1)) for k in existing if (m := _DEV_ID.fullmatch(k))]
        return f"dev-{max(numbers, default=0) + 1}"
    while (candidate := f"k{datetime.now(UTC):%Y%m%d}-{token_hex(2)}") in existing:
        continue
    return candidate


def add_key(ring_text: str, key_id: str) -> str:
    """The ring with a new random key ``key_id`` appended (refused if the id is taken)."""
    if key_id in key_ids(ring_text):
        raise RingError(f"key id '{key_id}' is already in the ring; choose another with --key-id")
    encoded = base64.b64encode(generate_key()).decode("ascii")
    updated = f"{ring_text.strip().rstrip(',')},{key_id}:{encoded}"
    KeyRing.from_env_string(updated, active=key_id)  # checks the id's characters
    return updated


def drop_key(ring_text: str, key_id: str) -> str:
    """The ring without ``key_id`` (refused if it is absent or the last key)."""
    ids = key_ids(ring_text)
    if key_id not in ids:
        raise RingError(f"key id '{key_id}' is not in the ring (it holds {', '.join(ids)})")
    if len(ids) == 1:
        raise RingError(f"key '{key_id}' is the ring's only key; rotate first")
    kept = [e for e, k in zip(ring_text.split(","), ids, strict=True) if k != key_id]
    return ",".join(entry.strip() for entry in kept)


@dataclass
class DevRing:
    """The development ring in dev-secrets.json: read, change, write back (0600, atomic)."""

    path: Path
    stored: dict[str, Any]

    @classmethod
    def load(cls, settings: Settings) -> DevRing:
        """Read the file the hub made on its first start."""
        path = settings.data_dir / FILE_NAME
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RingError(f"{path} does not exist: start the hub once to create it") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise RingError(f"cannot read {path} ({type(exc).__name__}); check it") from None
        if not isinstance(stored, dict) or not isinstance(stored.get("data_keys"), str):
            raise RingError(f"{path} holds no data key ring: start the hub once to create it")
        return cls(path, stored)

    @property
    def ring(self) -> str:
        return str(self.stored["data_keys"])

    @property
    def active(self) -> str:
        return str(self.stored.get("data_key_active") or DEV_KEY_ID)

    def save(self, ring_text: str, *, active: str) -> None:
        """Write the new ring and active id in place of the old file, atomically."""
        self.stored.update(data_keys=ring_text, data_key_active=active)
        temporary = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.{token_hex(4)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.stored, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 and write ``text``; an existing file is never replaced."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
    except FileExistsError:
        raise RingError(f"{path} already exists: give a new file for the secret") from None
    except OSError as exc:
        raise RingError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
