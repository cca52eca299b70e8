"""Standard Webhooks signing and verification: HMAC-SHA256 `v1` signatures, `whsec_` secrets.

The HMAC comes from the standardwebhooks library; header parsing and the timestamp window
are checked here against an explicit `now`, because the library reads the wall clock.
Signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the body must be UTF-8 text.
"""

import base64
import binascii
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from secrets import token_bytes
from typing import Final

from standardwebhooks.webhooks import Webhook

from security.errors import KeyMaterialError, SignatureError

__all__ = [
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "new_secret",
    "sign",
    "verify",
]

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a format prefix, not a secret
_HEADERS: Final = (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE)
_SECRET_BYTES: Final = 32
_SECRET_RANGE: Final = range(24, 65)  # the spec: at least 24 bytes, at most 512 bits
_MAX_SIGNATURES: Final = 16
_HMAC_BYTES: Final = 32  # a v1 signature is one HMAC-SHA256 digest
# The spec forbids '.' in ids: with one, id, timestamp and body could be re-split.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
# Canonical whole seconds (no sign, no leading zero, at most year 5138).
_TIMESTAMP = re.compile(r"[1-9][0-9]{0,10}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def new_secret() -> str:
    """Return a new signing secret: 'whsec_' + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(_SECRET_BYTES)).decode("ascii")


def sign(secrets: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """Return the webhook-id, -timestamp and -signature headers, one v1 signature per secret."""
    signers = _signers(secrets)
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("msg_id must be 1-256 printable ASCII characters without '.' or spaces")
    seconds = _epoch_seconds(timestamp)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body must be UTF-8 text to be signed as a Standard Webhook") from None
    at = datetime.fromtimestamp(seconds, tz=UTC)
    signature = " ".join(signer.sign(msg_id, at, text) for signer in signers)
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(seconds), HEADER_SIGNATURE: signature}


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
) -> str:
    """Return the webhook id if any secret signed this message within the window, else raise."""
    signers = _signers(secrets)
    if tolerance <= timedelta(0):
        raise ValueError("tolerance must be positive")
    _epoch_seconds(now)  # refuses a naive `now`
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signature = (_header(lowered, name) for name in _HEADERS)
    if not _MSG_ID.fullmatch(msg_id):
        raise SignatureError(f"{HEADER_ID} must be 1-256 printable ASCII characters without '.'")
    at = _check_timestamp(stamp, now, tolerance)
    offered = _offered(signature)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("the body is not UTF-8 text, so it cannot carry a signature") from None
    for signer in signers:
        expected = base64.b64decode(signer.sign(msg_id, at, text).partition(",")[2])
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise SignatureError(f"no signature in {HEADER_SIGNATURE} matches a current secret")


def _signers(secrets: Sequence[str]) -> list[Webhook]:
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not a single string")
    if not secrets:
        raise KeyMaterialError("at least one webhook secret is needed")
    return [Webhook(_secret_bytes(secret, i, len(secrets))) for i, secret in enumerate(secrets)]


def _secret_bytes(secret: str, index: int, count: int) -> bytes:
    where = f"webhook secret {index + 1} of {count}"
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise KeyMaterialError(f"{where} must be '{SECRET_PREFIX}' followed by base64")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"{where} is not valid base64 after '{SECRET_PREFIX}'") from None
    if len(raw) not in _SECRET_RANGE:
        raise KeyMaterialError(
            f"{where} must hold 24 to 64 random bytes; make one with new_secret()"
        )
    return raw


def _epoch_seconds(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return (moment - _EPOCH) // timedelta(seconds=1)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SignatureError(f"the {name} header is missing or empty")
    return value.strip()


def _check_timestamp(stamp: str, now: datetime, tolerance: timedelta) -> datetime:
    if not _TIMESTAMP.fullmatch(stamp):
        raise SignatureError(f"{HEADER_TIMESTAMP} must be whole seconds since the Unix epoch")
    at = datetime.fromtimestamp(int(stamp), tz=UTC)
    if at < now - tolerance:
        raise SignatureError(
            f"{HEADER_TIMESTAMP} is older than the allowed window: a replay or a late retry"
        )
    if at > now + tolerance:
        raise SignatureError(f"{HEADER_TIMESTAMP} is too far in the future: check the clock")
    return at


def _offered(signature: str) -> list[bytes]:
    entries = signature.split()
    if len(entries) > _MAX_SIGNATURES:
        raise SignatureError(f"{HEADER_SIGNATURE} lists more than {_MAX_SIGNATURES} signatures")
    offered = []
    for entry in entries:
        version, _, value = entry.partition(",")
        if version != "v1":
            continue  # other schemes (e.g. asymmetric v1a) are not accepted here
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == _HMAC_BYTES:
            offered.append(decoded)
    if not offered:
        raise SignatureError(f"{HEADER_SIGNATURE} carries no well-formed 'v1,<base64>' signature")
    return offered
