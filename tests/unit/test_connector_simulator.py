"""The simulated case system: verifies, decrypts, files under its own reference and answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from connectors.base import Connector
from connectors.police import PoliceXmlConnector
from connectors.simulator import CaseSystem
from connectors.social_care import SocialCareConnector
from schemas.escalation import Status
from schemas.updates import StageUpdate
from security.envelopes import encrypt_for, generate_recipient_key
from security.webhooks import new_secret, sign

AT = datetime(2026, 3, 9, 11, 0, tzinfo=UTC)


def _update(summary: str = "The disagreement moved to stage 2.") -> StageUpdate:
    return StageUpdate(
        update_id="esc-1:2:nct-csc",
        escalation_id="0b7f5c1e-8a43-4c1d-9a55-2f1f6b0e9d10",
        sequence=2,
        partnership="northamptonshire",
        procedure_id="northamptonshire",
        procedure_version="1.0.0",
        recipient_agency_id="nct-csc",
        recipient_case_reference="CS-004512",
        event="stage_changed",
        occurred_at=AT,
        status=Status.OPEN,
        stage=2,
        stage_title="Manager to manager",
        tier=1,
        due=AT + timedelta(days=7),
        clause="Northamptonshire flowchart Stage 2",
        summary=summary,
    )


def _system(kind: Literal["EC", "RSA"], connector: Connector) -> tuple[CaseSystem, dict[str, Any]]:
    private, public = generate_recipient_key(kind)
    return CaseSystem("agency", private, secret=new_secret(), connector=connector), public


def _delivery(
    system: CaseSystem, public: dict[str, Any], update: StageUpdate, *, msg_id: str = "msg_1"
) -> tuple[dict[str, str], bytes]:
    """What the hub POSTs: the native document, encrypted for the agency, signed."""
    rendered = system.connector.render_outbound(update)
    body = encrypt_for(public, rendered.body, content_type=rendered.media_type).encode()
    headers = sign([system.secret], msg_id, datetime.now(UTC), body)
    return {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("kind", ["EC", "RSA"])
def test_an_update_for_either_key_type_the_hub_accepts_is_decrypted_and_filed(
    kind: Literal["EC", "RSA"],
) -> None:
    system, public = _system(kind, SocialCareConnector())

    assert system.accept(*_delivery(system, public, _update())) == 200

    assert system.refused == []
    [filed] = system.filed["CS-004512"]
    assert filed.record is not None
    assert (filed.record.document_id, filed.record.stage) == ("esc-1:2:nct-csc", 2)


def test_an_update_far_larger_than_joserfcs_default_limit_is_still_decrypted() -> None:
    system, public = _system("EC", SocialCareConnector())
    update = _update(summary="A long account of the disagreement. " * 3_000)  # ~108 KB

    assert system.accept(*_delivery(system, public, update)) == 200
    assert len(system.filed["CS-004512"]) == 1


def test_a_repeated_delivery_is_filed_once_and_answered_in_the_native_format() -> None:
    system, public = _system("EC", PoliceXmlConnector())
    update = _update().model_copy(update={"recipient_case_reference": "34/12345/26"})
    headers, body = _delivery(system, public, update)

    assert system.accept(headers, body) == 200
    assert system.accept(headers, body) == 200

    assert len(system.filed["34/12345/26"]) == 1
    answer = system.answers["msg_1"]
    assert answer.media_type == "application/xml"
    assert b"<Status>Received</Status>" in answer.body


def test_a_bad_signature_or_a_token_for_another_key_is_refused() -> None:
    system, public = _system("EC", SocialCareConnector())
    headers, body = _delivery(system, public, _update())

    assert system.accept({**headers, "webhook-signature": "v1,AAAA"}, body) == 401
    _, stranger = generate_recipient_key("EC")
    assert system.accept(*_delivery(system, stranger, _update(), msg_id="msg_2")) == 400
    assert system.refused == ["signature", "decryption"]
    assert system.received == []
