"""At-rest encryption with a key ring: rotation keeps old data readable, tampering is caught."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.errors import DecryptionError, KeyMaterialError
from security.keyring import KeyRing, generate_key

K1, K2 = generate_key(), generate_key()
SECRET = b"child: Jane Doe, 9434765919"
AAD = b"escalations:42:child"


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_a_blob_decrypts_with_the_same_ring_and_aad() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    blob = ring.encrypt(SECRET, aad=AAD)
    assert SECRET not in blob
    assert ring.decrypt(blob, aad=AAD) == SECRET


def test_a_blob_read_with_another_aad_is_refused() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    blob = ring.encrypt(SECRET, aad=AAD)
    with pytest.raises(DecryptionError, match="failed authentication"):
        ring.decrypt(blob, aad=b"escalations:43:child")


def test_two_encryptions_of_the_same_plaintext_differ() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    assert ring.encrypt(SECRET) != ring.encrypt(SECRET)


def test_old_blobs_still_decrypt_after_rotation() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    old_blob = ring.encrypt(SECRET, aad=AAD)
    rotated = ring.rotate("k2", K2)
    assert rotated.active_key_id == "k2"
    assert rotated.decrypt(old_blob, aad=AAD) == SECRET
    assert rotated.decrypt(rotated.encrypt(SECRET, aad=AAD), aad=AAD) == SECRET


def test_rotation_returns_a_new_ring_and_leaves_the_old_one_alone() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    rotated = ring.rotate("k2", K2)
    assert ring.key_ids == ("k1",)
    assert rotated.key_ids == ("k1", "k2")
    with pytest.raises(DecryptionError, match="key id 'k2'"):
        ring.decrypt(rotated.encrypt(SECRET))


def test_only_blobs_under_a_retired_key_need_rotation() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    old_blob = ring.encrypt(SECRET)
    rotated = ring.rotate("k2", K2)
    assert rotated.needs_rotation(old_blob)
    assert not rotated.needs_rotation(rotated.encrypt(SECRET))


def test_rotating_to_an_existing_key_id_is_refused() -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    with pytest.raises(KeyMaterialError, match="already in the ring"):
        ring.rotate("k1", K2)


@pytest.mark.parametrize("where", ["version", "key id", "nonce", "ciphertext", "tag"])
def test_tampering_with_any_part_of_a_blob_is_detected(where: str) -> None:
    ring = KeyRing.from_keys({"k1": K1, "k2": K2}, active="k1")
    blob = bytearray(ring.encrypt(SECRET, aad=AAD))
    position = {"version": 0, "key id": 3, "nonce": 5, "ciphertext": 20, "tag": len(blob) - 1}
    blob[position[where]] ^= 0x01
    with pytest.raises(DecryptionError):
        ring.decrypt(bytes(blob), aad=AAD)


def test_a_blob_cannot_be_relabelled_to_another_key_id_holding_the_same_key() -> None:
    ring = KeyRing.from_keys({"ka": K1, "kb": K1}, active="ka")
    blob = ring.encrypt(SECRET)
    relabelled = blob[:2] + b"kb" + blob[4:]
    with pytest.raises(DecryptionError, match="failed authentication"):
        ring.decrypt(relabelled)


@pytest.mark.parametrize(
    "blob", [b"", b"\x01", b"\x02\x02k1" + bytes(40), b"\x01\x02k1" + bytes(10)]
)
def test_a_truncated_or_foreign_blob_is_refused(blob: bytes) -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1")
    with pytest.raises(DecryptionError):
        ring.decrypt(blob)


def test_a_ring_parses_from_an_environment_string() -> None:
    ring = KeyRing.from_env_string(f" k1:{_b64(K1)} , k2:{_b64(K2)}", active="k2")
    assert ring.key_ids == ("k1", "k2")
    assert ring.active_key_id == "k2"
    assert ring.decrypt(KeyRing.from_keys({"k1": K1}, active="k1").encrypt(SECRET)) == SECRET


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (f"{_b64(K1)}", "must be 'key_id:base64key'"),
        (f"{_b64(K1)}:k1", "must be 'key_id:base64key'"),
        ("k1:not base64!", "not base64"),
        (f"k1:{_b64(K1)},k1:{_b64(K2)}", "repeats"),
        (f"k1:{_b64(K1[:16])}", "32 bytes"),
        (f"k2:{_b64(K2)}", "active key id"),
        ("", "must be 'key_id:base64key'"),
    ],
)
def test_a_bad_environment_string_is_refused_without_echoing_keys(value: str, problem: str) -> None:
    with pytest.raises(KeyMaterialError, match=problem) as caught:
        KeyRing.from_env_string(value, active="k1")
    shown = str(caught.value) + repr(caught.value)
    assert _b64(K1) not in shown
    assert _b64(K2) not in shown
    assert caught.value.__cause__ is None


def test_keys_of_the_wrong_size_and_bad_ids_are_refused() -> None:
    with pytest.raises(KeyMaterialError, match="32 bytes"):
        KeyRing.from_keys({"k1": b"short"}, active="k1")
    with pytest.raises(KeyMaterialError, match="key ids"):
        KeyRing.from_keys({"k 1": K1}, active="k 1")
    with pytest.raises(KeyMaterialError, match="at least one key"):
        KeyRing.from_keys({}, active="k1")


def test_the_ring_repr_shows_key_ids_only() -> None:
    shown = repr(KeyRing.from_keys({"k1": K1, "k2": K2}, active="k2"))
    assert shown == "KeyRing(active='k2', key_ids=('k1', 'k2'))"
    for key in (K1, K2):
        assert _b64(key) not in shown
        assert key.hex() not in shown


def test_generated_keys_are_32_random_bytes() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(key) == 32 for key in keys)


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=256))
def test_any_plaintext_round_trips_through_the_ring(plaintext: bytes, aad: bytes) -> None:
    ring = KeyRing.from_keys({"k1": K1}, active="k1").rotate("k2", K2)
    assert ring.decrypt(ring.encrypt(plaintext, aad=aad), aad=aad) == plaintext
