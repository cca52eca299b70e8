"""The audit hash chain names the first broken link; signed checkpoints catch a cut-off tail."""

from typing import Any

import pytest

from security.audit import (
    GENESIS,
    canonical_json,
    chain_hash,
    generate_checkpoint_key,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from security.errors import KeyMaterialError

Entry = dict[str, Any]


def _entries() -> list[Entry]:
    return [
        {"seq": i, "rule": f"clause-{i}", "stage": i + 1, "procedure": {"id": "nhft", "v": 3}}
        for i in range(5)
    ]


def _chain(entries: list[Entry], start: str = GENESIS) -> list[tuple[Entry, str]]:
    links, prev = [], start
    for entry in entries:
        prev = chain_hash(prev, entry)
        links.append((entry, prev))
    return links


def test_an_untouched_chain_verifies() -> None:
    assert verify_chain(_chain(_entries())) is None
    assert verify_chain([]) is None


@pytest.mark.parametrize("index", range(5))
def test_verify_names_the_first_broken_index_after_an_entry_is_mutated(index: int) -> None:
    links = _chain(_entries())
    links[index][0]["stage"] = 99
    assert verify_chain(links) == index


@pytest.mark.parametrize("index", range(5))
def test_verify_names_the_index_of_a_rewritten_stored_hash(index: int) -> None:
    links = _chain(_entries())
    entry, stored = links[index]
    links[index] = (entry, stored[:-1] + ("0" if stored[-1] != "0" else "1"))
    assert verify_chain(links) == index


def test_a_deleted_entry_breaks_the_link_that_followed_it() -> None:
    links = _chain(_entries())
    del links[2]
    assert verify_chain(links) == 2


def test_reordered_entries_break_the_chain() -> None:
    links = _chain(_entries())
    links[1], links[2] = links[2], links[1]
    assert verify_chain(links) == 1


def test_a_rewritten_entry_with_a_recomputed_own_hash_still_breaks_the_next_link() -> None:
    links = _chain(_entries())
    forged = {**links[1][0], "stage": 5}
    links[1] = (forged, chain_hash(links[0][1], forged))
    assert verify_chain(links) == 2


def test_a_segment_verifies_from_a_known_head() -> None:
    links = _chain(_entries())
    assert verify_chain(links[3:], start=links[2][1]) is None
    assert verify_chain(links[3:]) == 0


def test_canonical_json_ignores_key_order_and_whitespace() -> None:
    assert (
        canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}})
        == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )
    assert chain_hash(GENESIS, {"b": 1, "a": 2}) == chain_hash(GENESIS, {"a": 2, "b": 1})


def test_not_a_number_is_refused_rather_than_hashed_ambiguously() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        chain_hash(GENESIS, {"score": float("nan")})


@pytest.mark.parametrize("prev", ["", "0" * 63, "G" * 64, GENESIS.upper() + "A"])
def test_a_malformed_previous_hash_is_refused(prev: str) -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        chain_hash(prev, {})


def test_genesis_is_64_zeros() -> None:
    assert GENESIS == "0" * 64


def test_a_signed_checkpoint_verifies_for_its_sequence_and_head() -> None:
    private, public = generate_checkpoint_key()
    head = _chain(_entries())[-1][1]
    signature = sign_checkpoint(private, 4, head)
    assert verify_checkpoint(public, 4, head, signature)


def test_a_checkpoint_does_not_verify_for_another_sequence_head_key_or_signature() -> None:
    private, public = generate_checkpoint_key()
    _, other_public = generate_checkpoint_key()
    links = _chain(_entries())
    head = links[-1][1]
    signature = sign_checkpoint(private, 4, head)
    assert not verify_checkpoint(public, 3, head, signature)
    assert not verify_checkpoint(public, 4, links[-2][1], signature)
    assert not verify_checkpoint(other_public, 4, head, signature)
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert not verify_checkpoint(public, 4, head, flipped)
    assert not verify_checkpoint(public, 4, head, "not a signature")
    assert not verify_checkpoint(public, True, head, signature)  # a bool is not a sequence number


def test_a_cut_off_tail_passes_the_chain_but_not_the_last_checkpoint() -> None:
    private, public = generate_checkpoint_key()
    links = _chain(_entries())
    checkpoint = sign_checkpoint(private, 4, links[-1][1])
    truncated = links[:3]
    assert verify_chain(truncated) is None
    assert not verify_checkpoint(public, 2, truncated[-1][1], checkpoint)


def test_unusable_checkpoint_keys_are_refused() -> None:
    with pytest.raises(KeyMaterialError, match="32 raw bytes"):
        sign_checkpoint(b"short", 0, GENESIS)
    with pytest.raises(KeyMaterialError, match="32 raw bytes"):
        verify_checkpoint(b"short", 0, GENESIS, "")


def test_signing_a_malformed_checkpoint_is_refused() -> None:
    private, _ = generate_checkpoint_key()
    with pytest.raises(ValueError, match="seq"):
        sign_checkpoint(private, -1, GENESIS)
    with pytest.raises(ValueError, match="head_hash"):
        sign_checkpoint(private, 0, "abc")


def test_the_published_public_key_verifies_checkpoints_signed_with_its_private_key() -> None:
    from security.audit import public_key_from_private

    private, public = generate_checkpoint_key()
    assert public_key_from_private(private) == public
    signature = sign_checkpoint(private, 7, "a" * 64)
    assert verify_checkpoint(public_key_from_private(private), 7, "a" * 64, signature)
