"""Refusals of schema-valid requests that no JSON Schema can prevent, and how each is proved.

schemathesis' ``positive_data_acceptance`` expects every request that fits the OpenAPI
document to be accepted. The document declares all it can (``gateway.api.document``), but a
few rules depend on arithmetic, on the world outside, or on two values at once, which JSON
Schema cannot state. Each such rule is an ``Undeclarable``: the operation it belongs to and a
proof that runs the hub's own check on the value that was sent. A refusal is let through only
when the proof holds, so the exemption is exactly as wide as the rule, and every other refusal
of schema-valid data still fails the check:

- connector registration, ``public_jwk``: an EC point must lie on its curve (elliptic-curve
  arithmetic; the schema fixes curve, lengths and alphabet, not the point);
- connector registration, ``callback_url``: the host must resolve, and only to public
  addresses (DNS at the time of the request; the schema fixes the URL's form);
- events, ``raised``: the raising agency must be one of the parties, and no agency may be a
  party twice (``RaisedData``'s validator relates two values; JSON Schema's ``uniqueItems``
  compares whole items, not one member of each);
- events in a native media type (FHIR JSON, police XML): the connector kind's own format,
  defined by FHIR R4 and the police schema, not re-declared in the document; a refusal counts
  only if it is that connector's translation refusing the document (``connector_kind`` names
  a kind that is not the generic one, status 400 or 422).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from gateway.api.jwk import declared_jwk
from gateway.api.urls import ForbiddenAddress, UnresolvableHost, check_callback_url
from security.envelopes import validate_public_jwk
from security.errors import KeyMaterialError

__all__ = ["UNDECLARABLE", "Undeclarable", "exemption"]

CONNECTORS: Final = "POST /v1/agencies/{agency_id}/connectors"
EVENTS: Final = "POST /v1/connectors/{connector_id}/events"
#: Media types of the generic connector: the common schema, declared in full.
COMMON_TYPES: Final = frozenset(
    {"application/json", "application/cloudevents+json", "application/cloudevents-batch+json"}
)
RAISED: Final = "uk.escalation-hub.v1.raised"
#: Where the parties rule is reported: the event's data, its raiser, or a repeated party.
_PARTIES_RULE: Final = re.compile(
    r"\[(?P<index>\d+)\]\.data(?:\.raised_by\.agency_id|\.parties\[\d+\]\.agency_id)?"
)
Proof = Callable[[Any, Mapping[str, Any], bool], bool]  # (sent body, problem, loopback)


@dataclass(frozen=True)
class Undeclarable:
    """A rule no schema can state: where, why, and the proof that the sent value breaks it."""

    operation: str
    reason: str
    proves: Proof


def _off_curve(body: Any, problem: Mapping[str, Any], loopback: bool) -> bool:
    """The key fits the declared schema, and security finds its EC numbers form no key."""
    key = body.get("public_jwk") if isinstance(body, Mapping) else None
    if problem.get("field") != "public_jwk" or not isinstance(key, Mapping):
        return False
    given = {name: value for name, value in key.items() if value is not None}
    try:
        declared_jwk(given)
    except KeyMaterialError:
        return False  # not schema-valid after all: no exemption
    try:
        validate_public_jwk(given)
    except KeyMaterialError:
        return given.get("kty") == "EC"
    return False


def _unreachable_host(body: Any, problem: Mapping[str, Any], loopback: bool) -> bool:
    """The hub's own guard, run now, finds the host unresolvable or not only public."""
    url = body.get("callback_url") if isinstance(body, Mapping) else None
    if problem.get("field") != "callback_url" or not isinstance(url, str):
        return False
    try:
        check_callback_url(url, allow_loopback=loopback)
    except (UnresolvableHost, ForbiddenAddress):
        return True
    except ValueError:
        return False
    return False


def _raised_parties(body: Any, problem: Mapping[str, Any], loopback: bool) -> bool:
    """Every error is on a 'raised' event whose raiser is no party, or a party is twice."""
    events = body if isinstance(body, list) else [body]
    errors = problem.get("errors") or []
    if problem.get("status") != 422 or not errors:
        return False
    for error in errors:
        where = _PARTIES_RULE.fullmatch(str(error.get("field", "")))
        index = int(where["index"]) if where else -1
        if not 0 <= index < len(events) or not _breaks_parties(events[index]):
            return False
    return True


def _breaks_parties(event: Any) -> bool:
    if not isinstance(event, Mapping) or event.get("type") != RAISED:
        return False
    data = event.get("data") or {}
    ids = [p.get("agency_id") for p in data.get("parties") or [] if isinstance(p, Mapping)]
    raiser = (data.get("raised_by") or {}).get("agency_id")
    return len(set(ids)) != len(ids) or raiser not in ids


def _native_translation(body: Any, problem: Mapping[str, Any], loopback: bool) -> bool:
    """A native connector's own translation refused its document (checked by the caller's
    media type: never one of the common schema's)."""
    kind = problem.get("connector_kind")
    return problem.get("status") in (400, 422) and isinstance(kind, str) and kind != "generic"


UNDECLARABLE: Final = (
    Undeclarable(CONNECTORS, "EC public key whose point is not on its curve", _off_curve),
    Undeclarable(
        CONNECTORS, "callback host unresolvable or not only public (DNS)", _unreachable_host
    ),
    Undeclarable(EVENTS, "raised: raiser not a party, or a party twice", _raised_parties),
    Undeclarable(EVENTS, "native document refused by its connector kind", _native_translation),
)


def exemption(case: Any, response: Any, *, allow_loopback: bool) -> Undeclarable | None:
    """The undeclarable rule a refused positive case broke, proved on what it sent; or None."""
    try:
        problem = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    if not isinstance(problem, dict):
        return None
    label = case.operation.label
    native = (case.media_type or "").split(";")[0].strip().lower() not in COMMON_TYPES
    for rule in UNDECLARABLE:
        if rule.operation != label or (rule.proves is _native_translation) != native:
            continue
        if rule.proves(case.body, problem, allow_loopback):
            return rule
    return None
