"""Development secrets: generated once, kept in ``data_dir/dev-secrets.json`` (mode 0600).

Only in development. Every placeholder secret is replaced by a generated one that is reused
on the next start, so data sealed under the generated key ring stays readable. The admin
token is printed once, to stderr, when it is created. Elsewhere settings pass unchanged.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from secrets import token_hex
from typing import Any, Final

from pydantic import SecretStr

from gateway.settings import PLACEHOLDER, Environment, Settings
from security.audit import generate_checkpoint_key
from security.credentials import new_credential
from security.keyring import generate_key

__all__ = ["DEV_KEY_ID", "FILE_NAME", "DevSecretsError", "resolve_secrets"]

FILE_NAME: Final = "dev-secrets.json"
DEV_KEY_ID: Final = "dev-1"
_MODE: Final = 0o600

logger = logging.getLogger(__name__)


class DevSecretsError(RuntimeError):
    """The development secrets file cannot be read or written."""


def _admin_token() -> str:
    return new_credential("ehadmin")[0]


def _data_keys() -> str:
    return f"{DEV_KEY_ID}:{base64.b64encode(generate_key()).decode('ascii')}"


def _pseudonym_key() -> str:
    return base64.urlsafe_b64encode(generate_key()).decode("ascii").rstrip("=")


def _audit_signing_key() -> str:
    return base64.b64encode(generate_checkpoint_key()[0]).decode("ascii")


_GENERATORS: Final[dict[str, Callable[[], str]]] = {
    "admin_token": _admin_token,
    "data_keys": _data_keys,
    "pseudonym_key": _pseudonym_key,
    "audit_signing_key": _audit_signing_key,
}


def resolve_secrets(settings: Settings) -> Settings:
    """Replace placeholder secrets in development with persisted generated ones."""
    if settings.environment is not Environment.DEVELOPMENT:
        return settings
    missing = [name for name in _GENERATORS if _is_placeholder(getattr(settings, name))]
    if not missing:
        return settings
    path = settings.data_dir / FILE_NAME
    stored, created = _load_or_create(path, missing)
    if "admin_token" in created:
        _announce(stored["admin_token"], path)
    update: dict[str, Any] = {name: SecretStr(stored[name]) for name in missing}
    if "data_keys" in missing:
        update["data_key_active"] = stored.get("data_key_active") or DEV_KEY_ID
    return settings.model_copy(update=update)


def _is_placeholder(value: SecretStr) -> bool:
    return value.get_secret_value() in ("", PLACEHOLDER)


def _load_or_create(path: Path, missing: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Return the stored secrets and the names generated now; a racing first start loses."""
    for _ in range(3):
        existing = _read(path)
        stored = dict(existing or {})
        created = [name for name in missing if not isinstance(stored.get(name), str)]
        if not created:
            return stored, []
        stored.update({name: _GENERATORS[name]() for name in created})
        if _write(path, stored, replace=existing is not None):
            logger.info("development secrets generated", extra={"secrets": created})
            return stored, created
    raise DevSecretsError(f"{path} keeps changing under this process: start one process first")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DevSecretsError(
            f"cannot read {path}: {exc.strerror}; check its permissions"
        ) from None
    try:
        stored = json.loads(raw)
    except json.JSONDecodeError:
        stored = None
    if not isinstance(stored, dict):
        raise DevSecretsError(
            f"{path} is not a JSON object: delete it to generate new development secrets "
            "(data sealed under the old keys then becomes unreadable)"
        )
    _tighten_mode(path)
    return stored


def _tighten_mode(path: Path) -> None:
    if stat.S_IMODE(path.stat().st_mode) & ~_MODE:
        path.chmod(_MODE)
        logger.warning("development secrets file was readable by others; now 0600")


def _write(path: Path, stored: dict[str, Any], *, replace: bool) -> bool:
    """Write a 0600 temporary file, flush it, then move it in; False if another start won."""
    temporary = path.with_name(f".{FILE_NAME}.{os.getpid()}.{token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(stored, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # refuses to overwrite a file another process just made
    except FileExistsError:
        return False
    except OSError as exc:
        raise DevSecretsError(
            f"cannot write {path}: {exc.strerror}; make EH_DATA_DIR writable or set the secrets"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _announce(token: str, path: Path) -> None:
    print(f"escalation-hub (development): admin token {token}", file=sys.stderr)
    print(f"escalation-hub (development): secrets are kept in {path}", file=sys.stderr)
