"""Keyed pseudonyms match the same child across agencies; NHS numbers are checked by mod 11."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.errors import InvalidIdentifier, KeyMaterialError
from security.pseudonyms import (
    is_valid_nhs_number,
    normalise_identifier,
    normalise_nhs_number,
    pseudonym,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
FULL_WIDTH = "".join(chr(0xFF10 + int(digit)) for digit in "9434765919")


@pytest.mark.parametrize("number", ["9434765919", "9434765870", "4010232137"])
def test_known_valid_nhs_numbers_pass_the_mod_11_check(number: str) -> None:
    assert is_valid_nhs_number(number)
    assert normalise_nhs_number(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "9434765918",  # check digit mismatch
        "9434765871",  # check digit mismatch
        "9434765960",  # the first nine digits give check digit 10, which is never issued
        "943476591",  # nine digits
        "94347659190",  # eleven digits
        "",
        "94347659l9",  # a letter l for a one
        FULL_WIDTH,  # full-width digits are not ASCII digits
        "943 476 5919",  # formatted: normalise first
    ],
)
def test_invalid_nhs_numbers_fail_the_check(number: str) -> None:
    assert not is_valid_nhs_number(number)


@pytest.mark.parametrize("formatted", ["943 476 5919", " 943 476 5919 ", "943\u00a0476\u00a05919"])
def test_normalising_an_nhs_number_removes_spaces(formatted: str) -> None:
    assert normalise_nhs_number(formatted) == "9434765919"


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("9434765918", "check digit"),
        ("9434765960", "check digit"),
        ("943 476 591", "10 digits"),
        ("943-476-5919", "10 digits"),
    ],
)
def test_an_invalid_nhs_number_error_does_not_contain_the_number(number: str, problem: str) -> None:
    with pytest.raises(InvalidIdentifier, match=problem) as caught:
        normalise_nhs_number(number)
    digits = "".join(ch for ch in number if ch.isdigit())
    shown = str(caught.value) + repr(caught.value)
    assert digits not in shown
    assert number not in shown
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_an_invalid_identifier_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="check digit"):
        normalise_nhs_number("9434765918")


def test_a_pseudonym_is_stable_for_the_same_key() -> None:
    assert pseudonym(KEY, "nhs", "9434765919") == pseudonym(KEY, "nhs", "9434765919")


def test_a_pseudonym_differs_under_another_key() -> None:
    assert pseudonym(KEY, "nhs", "9434765919") != pseudonym(OTHER_KEY, "nhs", "9434765919")


def test_a_formatted_nhs_number_gives_the_same_pseudonym() -> None:
    assert pseudonym(KEY, "nhs", "943 476 5919") == pseudonym(KEY, "nhs", "9434765919")


def test_a_pseudonym_is_the_kind_then_a_hex_digest_without_the_value() -> None:
    value = pseudonym(KEY, "nhs", "9434765919")
    kind, _, digest = value.partition(":")
    assert kind == "nhs"
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert "9434765919" not in value


def test_different_nhs_numbers_give_different_pseudonyms() -> None:
    assert pseudonym(KEY, "nhs", "9434765919") != pseudonym(KEY, "nhs", "9434765870")


def test_other_identifiers_match_whatever_their_case_and_surrounding_space() -> None:
    assert pseudonym(KEY, "mosaic", "  ABC-123 ") == pseudonym(KEY, "mosaic", "abc-123")
    assert pseudonym(KEY, "mosaic", "STRASSE") == pseudonym(KEY, "mosaic", "straße")
    assert normalise_identifier("\uff21bc") == "abc"  # full-width A


def test_the_same_value_under_different_kinds_gives_unrelated_pseudonyms() -> None:
    first = pseudonym(KEY, "mosaic", "12345").partition(":")[2]
    second = pseudonym(KEY, "eclipse", "12345").partition(":")[2]
    assert first != second


def test_a_pseudonym_of_an_invalid_nhs_number_is_refused() -> None:
    with pytest.raises(InvalidIdentifier):
        pseudonym(KEY, "nhs", "9434765918")


def test_an_empty_identifier_is_refused() -> None:
    with pytest.raises(InvalidIdentifier, match="empty"):
        pseudonym(KEY, "mosaic", "   ")


def test_a_short_pseudonym_key_is_refused() -> None:
    with pytest.raises(KeyMaterialError, match="at least 32"):
        pseudonym(b"too short", "nhs", "9434765919")


@pytest.mark.parametrize("kind", ["", "NHS", "nhs:", "n hs", "1nhs"])
def test_a_malformed_kind_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        pseudonym(KEY, kind, "9434765919")


@settings(max_examples=200, deadline=None)
@given(prefix=st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_every_nine_digits_have_exactly_one_check_digit_unless_it_would_be_ten(
    prefix: str,
) -> None:
    total = sum(int(d) * w for d, w in zip(prefix, range(10, 1, -1), strict=True))
    remainder = total % 11
    valid = [d for d in "0123456789" if is_valid_nhs_number(prefix + d)]
    if remainder == 1:  # 11 - 1 = 10: no number with these first nine digits is valid
        assert valid == []
    else:
        assert valid == [str((11 - remainder) % 11)]
