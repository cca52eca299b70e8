"""A connector's public encryption key as the API declares it: ``PublicJwk``.

``security`` is the authority on keys: ``validate_public_jwk`` refuses private members, weak
RSA keys, other curves and key types, and numbers that form no key, each with advice. These
models declare that policy as a schema for the OpenAPI document: RSA with a modulus of 2048,
3072 or 4096 bits and exponent 65537, or EC on P-256 or P-384, both for encryption only
(``use`` "enc", their one ``alg``), members in unpadded base64url, no other member.

Registration runs ``validate_public_jwk`` first (its reasons say what to do), then
``declared_jwk``, so a key is taken only if both take it, and every key the schema describes
is taken, but one: no schema can say whether an EC point lies on its curve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from security.errors import KeyMaterialError

__all__ = ["EcP256Jwk", "EcP384Jwk", "PublicJwk", "RsaJwk", "declared_jwk"]

_B64: Final = "[A-Za-z0-9_-]"
_HIGH: Final = "[g-z0-9_-]"  # a first base64url character whose top bit is set
#: The last character of canonical unpadded base64url after 1 or 2 bytes of a last quantum:
#: its unused low bits are zero (joserfc refuses any other).
_LAST: Final = {1: "[AQgw]", 2: "[AEIMQUYcgkosw048]"}


def _octets(count: int, first: str = _B64) -> str:
    """Canonical unpadded base64url of exactly ``count`` bytes (no anchors)."""
    quanta, rest = divmod(count, 3)
    chars = 4 * quanta + (rest + 1 if rest else 0)
    middle = chars - 1 - (1 if rest else 0)
    return first + f"{_B64}{{{middle}}}" + _LAST.get(rest, "")


#: A modulus of exactly 2048, 3072 or 4096 bits: its first bit set, 256, 384 or 512 bytes.
_MODULUS: Final = f"^(?:{_octets(256, _HIGH)}|{_octets(384, _HIGH)}|{_octets(512, _HIGH)})$"
Kid = Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,128}$", description="The key's id.")]


class _Jwk(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    use: Literal["enc"] | None = Field(default=None, description="Encryption only.")
    kid: Kid | None = None


class RsaJwk(_Jwk):
    """An RSA public key of 2048, 3072 or 4096 bits for RSA-OAEP-256."""

    kty: Literal["RSA"]
    n: str = Field(pattern=_MODULUS, description="The modulus, unpadded base64url.")
    e: Literal["AQAB"] = Field(description="The public exponent: 65537.")
    alg: Literal["RSA-OAEP-256"] | None = None
    key_ops: list[Literal["encrypt", "wrapKey"]] | None = Field(default=None, min_length=1)


class _EcJwk(_Jwk):
    kty: Literal["EC"]
    alg: Literal["ECDH-ES+A256KW"] | None = None
    key_ops: list[Literal["deriveKey", "deriveBits"]] | None = Field(default=None, min_length=1)


class EcP256Jwk(_EcJwk):
    """An EC public key on P-256 for ECDH-ES+A256KW; its point must lie on the curve."""

    crv: Literal["P-256"]
    x: str = Field(pattern=f"^{_octets(32)}$", description="32 bytes, unpadded base64url.")
    y: str = Field(pattern=f"^{_octets(32)}$", description="32 bytes, unpadded base64url.")


class EcP384Jwk(_EcJwk):
    """An EC public key on P-384 for ECDH-ES+A256KW; its point must lie on the curve."""

    crv: Literal["P-384"]
    x: str = Field(pattern=f"^{_octets(48)}$", description="48 bytes, unpadded base64url.")
    y: str = Field(pattern=f"^{_octets(48)}$", description="48 bytes, unpadded base64url.")


def _form(value: Any) -> str | None:
    """Which form a JWK takes: 'RSA', or the curve of an EC key (None: neither)."""
    if not isinstance(value, Mapping):
        return None
    if value.get("kty") == "RSA":
        return "RSA"
    crv = value.get("crv")
    return crv if value.get("kty") == "EC" and isinstance(crv, str) else None


_FORMS: Final = ("RSA", "P-256", "P-384")
PublicJwk = Annotated[
    Annotated[RsaJwk, Tag("RSA")]
    | Annotated[EcP256Jwk, Tag("P-256")]
    | Annotated[EcP384Jwk, Tag("P-384")],
    Discriminator(_form),
]
_ADAPTER: TypeAdapter[RsaJwk | EcP256Jwk | EcP384Jwk] = TypeAdapter(PublicJwk)
_REASONS: Final = {
    "missing": "is missing",
    "extra_forbidden": "is not a member the hub takes",
    "literal_error": "must be {expected}",
    "string_pattern_mismatch": "has the wrong length or characters",
    "too_short": "must not be empty",
    "union_tag_invalid": "is of no type the hub takes",
    "union_tag_not_found": "is of no type the hub takes",
}
_POLICY: Final = (
    "the hub takes RSA keys of 2048, 3072 or 4096 bits with exponent 65537 (AQAB), or EC keys "
    "on P-256 or P-384, for encryption ('use' enc)"
)


def declared_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The key as the declared ``PublicJwk`` takes it, or KeyMaterialError naming the member.

    Run after ``validate_public_jwk``: this refuses what security would take but the API does
    not declare (exponent 3, a 2056-bit modulus, a member the hub does not know...). The
    message names the member, never its value.
    """
    try:
        key = _ADAPTER.validate_python(jwk)
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in error["loc"] if p not in _FORMS)
        reason = _REASONS.get(error["type"], "is not valid").format(**(error.get("ctx") or {}))
        member = f"'{where}' " if where else "the key "
        raise KeyMaterialError(f"{member}{reason}: {_POLICY}") from None
    return key.model_dump(exclude_none=True)
