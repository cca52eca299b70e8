"""JWE envelopes: only the addressed agency reads them, and only allow-listed algorithms pass."""

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from security.envelopes import (
    MAX_PLAINTEXT_BYTES,
    decrypt,
    encrypt_for,
    generate_recipient_key,
    read_header,
    validate_public_jwk,
)
from security.errors import DecryptionError, DisallowedAlgorithm, KeyMaterialError

JWK = dict[str, Any]
KeyPair = tuple[JWK, JWK]
PLAINTEXT = b'{"child":{"nhs":"9434765919"},"narrative":"concern about neglect"}'


@pytest.fixture(scope="module")
def health() -> KeyPair:
    return generate_recipient_key("EC")


@pytest.fixture(scope="module")
def police() -> KeyPair:
    return generate_recipient_key("EC")


@pytest.fixture(scope="module")
def social_care() -> KeyPair:
    return generate_recipient_key("RSA")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _with_header(token: str, **changes: Any) -> str:
    segments = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4)))
    header.update(changes)
    segments[0] = _b64(json.dumps(header).encode())
    return ".".join(segments)


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_recipient_decrypts_what_was_encrypted_for_its_public_key(
    kind: str, health: KeyPair, social_care: KeyPair
) -> None:
    private, public = health if kind == "EC" else social_care
    token = encrypt_for(public, PLAINTEXT)
    plaintext, header = decrypt(private, token)
    assert plaintext == PLAINTEXT
    assert header["enc"] == "A256GCM"
    assert header["alg"] == ("ECDH-ES+A256KW" if kind == "EC" else "RSA-OAEP-256")
    assert header["cty"] == "application/json"
    assert header["kid"] == public["kid"]


def test_an_agency_cannot_decrypt_a_message_for_another_agency(
    health: KeyPair, police: KeyPair, social_care: KeyPair
) -> None:
    token = encrypt_for(health[1], PLAINTEXT)
    for private in (police[0], social_care[0]):
        with pytest.raises(DecryptionError):
            decrypt(private, token)


def test_an_agency_key_without_kid_cannot_decrypt_another_agencys_message(
    health: KeyPair, police: KeyPair
) -> None:
    token = encrypt_for({k: v for k, v in health[1].items() if k != "kid"}, PLAINTEXT)
    with pytest.raises(DecryptionError, match="cannot be decrypted"):
        decrypt({k: v for k, v in police[0].items() if k != "kid"}, token)


def test_a_token_naming_another_key_id_is_refused(health: KeyPair) -> None:
    token = encrypt_for(health[1], PLAINTEXT)
    with pytest.raises(DecryptionError, match="kid"):
        decrypt({**health[0], "kid": "another-key"}, token)


def test_two_encryptions_of_the_same_plaintext_differ(
    health: KeyPair, social_care: KeyPair
) -> None:
    for public in (health[1], social_care[1]):
        first, second = encrypt_for(public, PLAINTEXT), encrypt_for(public, PLAINTEXT)
        assert first != second
        # a fresh content key (segment 1 wraps it) and a fresh IV (segment 2) every time
        assert first.split(".")[1] != second.split(".")[1]
        assert first.split(".")[2] != second.split(".")[2]


@pytest.mark.parametrize("segment", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_tampering_with_any_jwe_segment_is_detected(
    segment: int, kind: str, health: KeyPair, social_care: KeyPair
) -> None:
    private, public = health if kind == "EC" else social_care
    segments = encrypt_for(public, PLAINTEXT).split(".")
    text = segments[segment]
    middle = len(text) // 2
    segments[segment] = text[:middle] + ("A" if text[middle] != "A" else "B") + text[middle + 1 :]
    with pytest.raises(DecryptionError):
        decrypt(private, ".".join(segments))


def test_a_valid_but_edited_protected_header_is_detected(health: KeyPair) -> None:
    token = _with_header(encrypt_for(health[1], PLAINTEXT), cty="text/plain")
    with pytest.raises(DecryptionError, match="altered"):
        decrypt(health[0], token)


def test_a_respelled_segment_with_the_same_bytes_is_refused(health: KeyPair) -> None:
    segments = encrypt_for(health[1], PLAINTEXT).split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tag = segments[4]  # 16 bytes in 22 characters: the last one carries 4 spare bits
    segments[4] = tag[:-1] + alphabet[alphabet.index(tag[-1]) ^ 1]
    with pytest.raises(DecryptionError, match="canonical"):
        decrypt(health[0], ".".join(segments))


@pytest.mark.parametrize("segments", [4, 6])
def test_a_token_with_the_wrong_number_of_parts_is_refused(segments: int, health: KeyPair) -> None:
    parts = encrypt_for(health[1], PLAINTEXT).split(".")
    token = ".".join((parts * 2)[:segments])
    with pytest.raises(DecryptionError, match="5 dot-separated parts"):
        decrypt(health[0], token)


@pytest.mark.parametrize(
    "changes",
    [
        {"alg": "RSA1_5"},
        {"alg": "dir"},
        {"alg": "ECDH-ES"},
        {"alg": "A256KW"},
        {"alg": "RSA-OAEP"},
        {"alg": None},
        {"alg": ["RSA-OAEP-256"]},
        {"enc": "A128CBC-HS256"},
        {"enc": "A128GCM"},
        {"zip": "DEF"},
    ],
)
def test_a_disallowed_algorithm_is_refused_before_any_decryption(
    changes: dict[str, Any], health: KeyPair
) -> None:
    token = _with_header(encrypt_for(health[1], PLAINTEXT), **changes)
    with pytest.raises(DisallowedAlgorithm):
        read_header(token)
    # An unusable key proves the header is judged before the key or ciphertext are touched.
    with pytest.raises(DisallowedAlgorithm):
        decrypt({}, token)


def test_a_genuine_rsa1_5_token_is_refused(social_care: KeyPair) -> None:
    key = RSAKey.import_key(social_care[1])
    with pytest.warns(SecurityWarning, match="RSA1_5"):  # joserfc's own deprecation warning
        token = jwe.encrypt_compact(
            {"alg": "RSA1_5", "enc": "A256GCM"}, PLAINTEXT, key, algorithms=["RSA1_5", "A256GCM"]
        )
    with pytest.raises(DisallowedAlgorithm, match="'RSA1_5' is refused"):
        decrypt(social_care[0], token)


def test_a_genuine_direct_symmetric_token_is_refused(health: KeyPair) -> None:
    key = OctKey.generate_key(256)
    token = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM"}, PLAINTEXT, key, algorithms=["dir", "A256GCM"]
    )
    with pytest.raises(DisallowedAlgorithm, match="'dir' is refused"):
        decrypt(health[0], token)


def test_a_genuine_compressed_token_is_refused(health: KeyPair) -> None:
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF"}
    algorithms = ["ECDH-ES+A256KW", "A256GCM", "DEF"]
    token = jwe.encrypt_compact(
        header, PLAINTEXT, ECKey.import_key(health[1]), algorithms=algorithms
    )
    with pytest.raises(DisallowedAlgorithm, match="zip"):
        decrypt(health[0], token)


def _rsa_public(bits: int) -> JWK:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    public = numbers.public_numbers()
    return {"kty": "RSA", "n": _b64int(public.n), "e": _b64int(public.e)}


def test_keys_smaller_than_2048_bit_rsa_are_refused() -> None:
    with pytest.raises(KeyMaterialError, match="1024 bits; at least 2048"):
        validate_public_jwk(_rsa_public(1024))
    with pytest.raises(KeyMaterialError):
        encrypt_for(_rsa_public(1024), PLAINTEXT)


@pytest.mark.parametrize(
    ("jwk", "hint"),
    [
        ({"kty": "oct", "k": _b64(b"k" * 32)}, "symmetric"),
        ({"kty": "OKP", "crv": "X25519", "x": _b64(b"x" * 32)}, "'kty'"),
        ({}, "'kty'"),
        ({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}, "'crv'"),
        ({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"}, "'crv'"),
        ({"kty": "RSA", "e": "AQAB"}, "'n'"),
        ({"kty": "RSA", "n": "not base64!", "e": "AQAB"}, "'n'"),
    ],
)
def test_registration_refuses_other_key_types_and_curves(jwk: JWK, hint: str) -> None:
    with pytest.raises(KeyMaterialError, match=hint):
        validate_public_jwk(jwk)


@pytest.mark.parametrize(
    ("changes", "hint"),
    [
        ({"use": "sig"}, "'use' must be 'enc'"),
        ({"alg": "RSA1_5"}, "'alg'"),
        ({"alg": "ECDH-ES"}, "'alg'"),
        ({"key_ops": ["verify"]}, "'key_ops'"),
        ({"kid": "has space"}, "'kid'"),
    ],
)
def test_registration_refuses_keys_declared_for_other_purposes(
    changes: JWK, hint: str, health: KeyPair
) -> None:
    with pytest.raises(KeyMaterialError, match=hint):
        validate_public_jwk({**health[1], **changes})


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi"])
def test_registration_refuses_a_jwk_with_private_members(
    member: str, health: KeyPair, social_care: KeyPair
) -> None:
    private = health[0] if member == "d" else social_care[0]
    public = health[1] if member == "d" else social_care[1]
    with pytest.raises(KeyMaterialError, match="private key members") as caught:
        validate_public_jwk({**public, member: private[member]})
    assert private[member] not in str(caught.value)
    with pytest.raises(KeyMaterialError):
        encrypt_for(private, PLAINTEXT)


def test_registration_refuses_a_point_that_is_not_on_the_curve(health: KeyPair) -> None:
    with pytest.raises(KeyMaterialError, match="valid key"):
        validate_public_jwk({**health[1], "y": health[1]["x"]})


def test_generated_keys_register_and_only_the_private_half_holds_d(social_care: KeyPair) -> None:
    for private, public in (generate_recipient_key(), social_care):
        validate_public_jwk(public)
        assert "d" in private
        assert "d" not in public
        assert public["use"] == "enc"


def test_p384_keys_are_accepted() -> None:
    key = ECKey.generate_key("P-384")
    token = encrypt_for(key.as_dict(private=False), PLAINTEXT)
    assert decrypt(key.as_dict(private=True), token)[0] == PLAINTEXT


def test_decrypting_needs_the_private_key(health: KeyPair) -> None:
    token = encrypt_for(health[1], PLAINTEXT)
    with pytest.raises(KeyMaterialError, match="'d'"):
        decrypt(health[1], token)


def test_errors_carry_neither_plaintext_nor_key_material(health: KeyPair, police: KeyPair) -> None:
    token = encrypt_for(health[1], PLAINTEXT)
    with pytest.raises(DecryptionError) as caught:
        decrypt(police[0], token)
    shown = " ".join(str(e) + repr(e) for e in (caught.value, caught.value.__cause__))
    assert "9434765919" not in shown
    assert police[0]["d"] not in shown


def test_oversized_plaintext_and_odd_content_types_are_refused(health: KeyPair) -> None:
    with pytest.raises(ValueError, match="larger than"):
        encrypt_for(health[1], b"x" * (MAX_PLAINTEXT_BYTES + 1))
    with pytest.raises(ValueError, match="content_type"):
        encrypt_for(health[1], PLAINTEXT, content_type="application/json\r\nX: y")


@settings(max_examples=25, deadline=None)
@given(
    plaintext=st.binary(max_size=2048), content_type=st.sampled_from(["application/json", "json"])
)
def test_any_plaintext_round_trips_through_an_envelope(
    plaintext: bytes, content_type: str, health: KeyPair
) -> None:
    token = encrypt_for(health[1], plaintext, content_type=content_type)
    assert decrypt(health[0], token) == (plaintext, read_header(token))
    assert read_header(token)["cty"] == content_type
