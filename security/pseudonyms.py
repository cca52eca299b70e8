"""Keyed pseudonyms for cross-agency matching, and NHS number validation.

`pseudonym(key, kind, value)` is `kind + ":" + hex(HMAC-SHA256(key, kind NUL normalised value))`:
stable for one key, unlinkable without it, and different per kind for the same value.
NHS numbers normalise to their 10 digits (whitespace removed, mod 11 checked); other
identifiers to NFKC, stripped and casefolded text. Errors never repeat the identifier.
"""

import hashlib
import hmac
import re
import unicodedata
from typing import Final

from security.errors import InvalidIdentifier, KeyMaterialError

__all__ = [
    "MIN_KEY_BYTES",
    "NHS_KIND",
    "is_valid_nhs_number",
    "normalise_identifier",
    "normalise_nhs_number",
    "pseudonym",
]

MIN_KEY_BYTES: Final = 32
NHS_KIND: Final = "nhs"
_NHS = re.compile(r"[0-9]{10}")  # ASCII digits only: str.isdigit() accepts e.g. '²' and '٣'
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_WEIGHTS: Final = range(10, 1, -1)


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """Return 'kind:' + the hex HMAC-SHA256 of the normalised value under this key."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise KeyMaterialError(f"a pseudonym key must be at least {MIN_KEY_BYTES} random bytes")
    if not _KIND.fullmatch(kind):
        raise ValueError("kind must be lower-case ASCII: a letter, then letters, digits, '_', '-'")
    normalised = normalise_nhs_number(value) if kind == NHS_KIND else normalise_identifier(value)
    message = kind.encode("ascii") + b"\x00" + normalised.encode("utf-8")
    return f"{kind}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def is_valid_nhs_number(value: str) -> bool:
    """True if value is exactly 10 ASCII digits ending in a valid mod 11 check digit."""
    if not isinstance(value, str) or not _NHS.fullmatch(value):
        return False
    total = sum(int(digit) * weight for digit, weight in zip(value, _WEIGHTS, strict=False))
    check = (11 - total % 11) % 11  # a remainder of 0 gives check digit 0
    return check != 10 and check == int(value[9])


def normalise_nhs_number(value: str) -> str:
    """Return the NHS number's 10 digits with whitespace removed, or raise InvalidIdentifier."""
    if not isinstance(value, str):
        raise InvalidIdentifier("an NHS number must be given as text")
    digits = "".join(value.split())
    if not _NHS.fullmatch(digits):
        raise InvalidIdentifier("an NHS number must be 10 digits (spaces between them are allowed)")
    if not is_valid_nhs_number(digits):
        raise InvalidIdentifier(
            "the NHS number's check digit does not match (mod 11): check it was copied correctly"
        )
    return digits


def normalise_identifier(value: str) -> str:
    """Return value in NFKC form, stripped and casefolded, or raise InvalidIdentifier if empty."""
    if not isinstance(value, str):
        raise InvalidIdentifier("an identifier must be given as text")
    normalised = unicodedata.normalize("NFKC", value).strip().casefold()
    if not normalised:
        raise InvalidIdentifier("an identifier must not be empty or only whitespace")
    return normalised
