"""Standard Webhooks signing: rotation, replay windows, and interop with the reference library."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook

from security.errors import KeyMaterialError, SignatureError
from security.webhooks import new_secret, sign, verify

NOW = datetime(2025, 3, 4, 10, 0, 0, tzinfo=UTC)
BODY = b'{"type":"escalation.stage_changed","data":{"stage":2}}'
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
OLD, NEW = new_secret(), new_secret()


def test_a_signed_message_verifies_and_returns_its_id() -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY)
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert verify([NEW], headers, BODY, now=NOW) == MSG_ID


def test_two_secrets_both_verify_during_rotation() -> None:
    headers = sign([OLD, NEW], MSG_ID, NOW, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify([OLD], headers, BODY, now=NOW) == MSG_ID
    assert verify([NEW], headers, BODY, now=NOW) == MSG_ID


def test_a_receiver_holding_two_secrets_accepts_a_sender_using_either() -> None:
    for sender in (OLD, NEW):
        headers = sign([sender], MSG_ID, NOW, BODY)
        assert verify([OLD, NEW], headers, BODY, now=NOW) == MSG_ID
        assert verify([NEW, OLD], headers, BODY, now=NOW) == MSG_ID


def test_a_signature_by_a_removed_secret_fails() -> None:
    headers = sign([OLD], MSG_ID, NOW, BODY)
    with pytest.raises(SignatureError, match="matches a current secret"):
        verify([NEW], headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("delay", "problem"),
    [
        (timedelta(minutes=5, seconds=1), "older than the allowed window"),
        (timedelta(days=2), "older than the allowed window"),
        (-timedelta(minutes=5, seconds=1), "in the future"),
    ],
)
def test_a_replayed_or_misdated_message_outside_the_window_is_refused(
    delay: timedelta, problem: str
) -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY)
    with pytest.raises(SignatureError, match=problem):
        verify([NEW], headers, BODY, now=NOW + delay)


def test_a_message_at_the_edge_of_the_window_is_accepted() -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY)
    for delay in (timedelta(minutes=5), -timedelta(minutes=5)):
        assert verify([NEW], headers, BODY, now=NOW + delay) == MSG_ID
    with pytest.raises(SignatureError):
        verify(
            [NEW], headers, BODY, now=NOW + timedelta(seconds=61), tolerance=timedelta(minutes=1)
        )


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused_by_name(missing: str) -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY)
    del headers[missing]
    with pytest.raises(SignatureError, match=f"the {missing} header is missing"):
        verify([NEW], headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", "msg_other"),
        ("webhook-timestamp", str(int(NOW.timestamp()) + 1)),
    ],
)
def test_changing_a_signed_header_is_detected(header: str, value: str) -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY) | {header: value}
    with pytest.raises(SignatureError, match="matches a current secret"):
        verify([NEW], headers, BODY, now=NOW)


def test_changing_the_body_is_detected() -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY)
    with pytest.raises(SignatureError):
        verify([NEW], headers, BODY.replace(b"2", b"3"), now=NOW)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in sign([NEW], MSG_ID, NOW, BODY).items()}
    assert verify([NEW], headers, BODY, now=NOW) == MSG_ID


def test_malformed_signature_entries_are_skipped_and_a_valid_one_still_counts() -> None:
    good = sign([NEW], MSG_ID, NOW, BODY)
    noisy = good | {"webhook-signature": "v1 v1,!!! v2,abc , v1a,AAAA " + good["webhook-signature"]}
    assert verify([NEW], noisy, BODY, now=NOW) == MSG_ID
    with pytest.raises(SignatureError, match="no well-formed 'v1,<base64>'"):
        verify([NEW], good | {"webhook-signature": "v1 v1,!!! v1a,AAAA"}, BODY, now=NOW)


@pytest.mark.parametrize("stamp", ["0123", "1.5e9", "-1", "1741082400.0", "nan", "99999999999999"])
def test_a_timestamp_that_is_not_canonical_whole_seconds_is_refused(stamp: str) -> None:
    headers = sign([NEW], MSG_ID, NOW, BODY) | {"webhook-timestamp": stamp}
    with pytest.raises(SignatureError, match="whole seconds"):
        verify([NEW], headers, BODY, now=NOW)


def test_an_id_containing_a_full_stop_is_refused() -> None:
    # With a '.', id, timestamp and body could be re-split into a different signed message.
    with pytest.raises(ValueError, match=r"without '\.'"):
        sign([NEW], "msg.1", NOW, BODY)
    headers = sign([NEW], MSG_ID, NOW, BODY) | {"webhook-id": "msg.1"}
    with pytest.raises(SignatureError, match="webhook-id"):
        verify([NEW], headers, BODY, now=NOW)


def test_signing_with_a_non_utc_datetime_signs_the_same_instant() -> None:
    london_summer = timezone(timedelta(hours=1))
    assert sign([NEW], MSG_ID, NOW.astimezone(london_summer), BODY) == sign(
        [NEW], MSG_ID, NOW, BODY
    )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign([NEW], MSG_ID, NOW.replace(tzinfo=None), BODY)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify([NEW], sign([NEW], MSG_ID, NOW, BODY), BODY, now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "must be 'whsec_'"),
        ("whsec_not*base64", "not valid base64"),
        ("whsec_c2hvcnQ=", "24 to 64 random bytes"),
    ],
)
def test_unusable_secrets_are_refused_without_being_echoed(secret: str, problem: str) -> None:
    with pytest.raises(KeyMaterialError, match=problem) as caught:
        sign([NEW, secret], MSG_ID, NOW, BODY)
    assert "secret 2 of 2" in str(caught.value)
    assert secret.removeprefix("whsec_") not in str(caught.value)


def test_errors_never_echo_secrets_or_signatures() -> None:
    headers = sign([OLD], MSG_ID, NOW, BODY)
    with pytest.raises(SignatureError) as caught:
        verify([NEW], headers, BODY, now=NOW)
    shown = str(caught.value) + repr(caught.value)
    for text in (NEW, NEW.removeprefix("whsec_"), headers["webhook-signature"][3:]):
        assert text not in shown


def test_a_single_secret_string_is_refused_as_a_secret_list() -> None:
    with pytest.raises(TypeError, match="sequence of secrets"):
        sign(NEW, MSG_ID, NOW, BODY)


def test_new_secrets_are_prefixed_random_and_usable() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(secret.startswith("whsec_") for secret in secrets)


def test_the_reference_library_verifies_our_signatures() -> None:
    now = datetime.now(UTC)
    headers = sign([OLD, NEW], MSG_ID, now, BODY)
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(BODY, headers) == {
            "type": "escalation.stage_changed",
            "data": {"stage": 2},
        }


def test_we_verify_the_reference_librarys_signatures() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(NEW).sign(MSG_ID, now, BODY.decode()),
    }
    assert verify([OLD, NEW], headers, BODY, now=now) == MSG_ID
    with pytest.raises(SignatureError):
        verify([OLD], headers, BODY, now=now)
