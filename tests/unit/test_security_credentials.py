"""API credentials: shown once, stored only as a salted hash, looked up by id."""

import time

import pytest

from security.credentials import credential_id, new_credential, verify_credential
from security.errors import CredentialError


def test_a_new_token_verifies_against_its_stored_hash() -> None:
    token, stored = new_credential("ehk")
    assert token.startswith("ehk_")
    assert verify_credential(token, stored)


def test_a_token_with_one_secret_character_changed_fails() -> None:
    token, stored = new_credential("ehk")
    changed = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert not verify_credential(changed, stored)


def test_another_credentials_token_fails() -> None:
    token, _ = new_credential("ehk")
    _, other_stored = new_credential("ehk")
    assert not verify_credential(token, other_stored)


def test_a_token_with_another_prefix_fails() -> None:
    token, stored = new_credential("ehk")
    assert not verify_credential("eha" + token[3:], stored)


def test_the_stored_hash_reveals_neither_token_nor_secret() -> None:
    token, stored = new_credential("ehk")
    secret = token.rsplit("_", 1)[1]
    assert token not in stored
    assert secret not in stored
    assert stored.startswith("sha256$")


def test_the_same_secret_would_hash_differently_under_each_salt() -> None:
    stored = {new_credential("ehk")[1].split("$")[1] for _ in range(20)}
    assert len(stored) == 20


def test_the_credential_id_finds_the_row_without_the_secret() -> None:
    token, _ = new_credential("ehk")
    _prefix, identifier, secret = token.split("_")
    assert credential_id(token) == identifier
    assert len(identifier) == 16
    assert len(secret) == 64


@pytest.mark.parametrize(
    "token", ["", "ehk", "ehk_abc_def", "ehk_" + "0" * 16 + "_" + "g" * 64, "x" * 500]
)
def test_a_malformed_token_does_not_verify_and_has_no_id(token: str) -> None:
    _, stored = new_credential("ehk")
    assert not verify_credential(token, stored)
    with pytest.raises(CredentialError, match="form") as caught:
        credential_id(token)
    assert token not in str(caught.value) or token == ""


@pytest.mark.parametrize("stored", ["", "sha256$zz$yy", "md5$" + "0" * 32 + "$" + "0" * 64])
def test_a_malformed_stored_hash_is_a_credential_error(stored: str) -> None:
    token, _ = new_credential("ehk")
    with pytest.raises(CredentialError, match="stored credential hash"):
        verify_credential(token, stored)


@pytest.mark.parametrize("prefix", ["", "e", "EHK", "ehk_", "1hk", "e" * 17])
def test_a_malformed_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_credential(prefix)


def test_tokens_are_unique() -> None:
    tokens = {new_credential("ehk")[0] for _ in range(50)}
    assert len(tokens) == 50


def test_verification_is_fast_enough_for_every_request() -> None:
    token, stored = new_credential("ehk")
    started = time.perf_counter()
    for _ in range(1000):
        assert verify_credential(token, stored)
    assert time.perf_counter() - started < 1.0  # a slow KDF would take seconds here
