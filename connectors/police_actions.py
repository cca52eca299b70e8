"""One builder per police ``<Action>``: a record's elements -> the common event's ``data``.

Builders return plain dicts; the inbound half validates the whole event once, so a schema
error carries its full location and is mapped to the native path there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from connectors.base import TranslationError
from connectors.police_record import (
    CATEGORIES,
    FLAGS,
    KINDS,
    METHODS,
    OUTCOMES,
    ROLES,
    Data,
    Record,
    agencies,
    is_valid_nhs_number,
    listed,
    timescale,
)
from connectors.police_xml import Node
from schemas.common import AgencyKind, Flag
from schemas.envelope import EventType

__all__ = ["BUILDERS", "EXTRA_ELEMENTS"]


EXTRA_ELEMENTS: Final[Mapping[EventType, tuple[str, ...]]] = {
    EventType.RAISED: ("Flags", "AgreedTimescale"),
    EventType.PLAN_AGREED: ("Plan",),
    EventType.DISCUSSION_RECORDED: ("Discussion",),
    EventType.ESCALATED: ("Evidence", "EscalateTo"),
    EventType.RESOLVED: ("Outcome",),
    EventType.FLAGS_CHANGED: ("Flags",),
}
_CHANGES: Final = {"Set": "set", "Cleared": "cleared"}
_PNC_ID: Final = re.compile(r"^[0-9]{2}([0-9]{2})?/[0-9]{1,7}[A-Z]$")
_NOMINAL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.:-]{0,63}$")
_SUBJECT: Final = ("PNCId", "NominalId", "NHSNumber", "Forename", "Surname", "DOB")


def _raised(r: Record) -> Data:
    node = r.node
    partnership = node.maybe_value("Partnership") or r.context.config.partnership
    if partnership is None:
        raise TranslationError(
            "is missing and the connector has no default partnership",
            path=f"{node.path}/Partnership",
            expected="the partnership's id, e.g. northamptonshire",
        )
    agreed = node.child("AgreedTimescale")
    return {
        "partnership": partnership,
        "raised_by": r.officer,
        "parties": [_own_party(r), *_partners(r)],
        "child": _child(node.must("Subject"), r),
        "concern_categories": listed(node.must("ConcernCategories"), "Category", CATEGORIES),
        "flags": listed(node.child("Flags"), "Flag", FLAGS, minimum=0),
        "summary": node.value("Narrative"),
        "agreed_timescale": None if agreed is None else timescale(agreed),
    }


def _own_party(r: Record) -> Data:
    return {
        "agency_id": r.agency_id,
        "kind": AgencyKind.POLICE,
        "case_reference": r.reference,
        "contact": r.officer,
    }


def _partners(r: Record) -> list[Data]:
    holder = r.node.must("PartnerAgencies")
    holder.only(("Agency",))
    agencies = holder.children("Agency")
    if not agencies:
        raise holder.error("names no partner agency", "an <Agency> for each other agency involved")
    parties, seen = [], {r.agency_id}
    for agency in agencies:
        agency.only((), ("code", "type", "reference"))
        agency_id = r.agency(agency, "code")
        if agency_id in seen:
            raise agency.error(
                "names an agency already among the parties", "each agency once", "code"
            )
        seen.add(agency_id)
        kind = agency.enum(agency.need("type"), KINDS, "type")
        parties.append(
            {"agency_id": agency_id, "kind": kind, "case_reference": agency.attr("reference")}
        )
    return parties


def _child(subject: Node, r: Record) -> Data:
    subject.only(_SUBJECT)
    local_ids = {}
    if (
        pnc := _checked(subject, "PNCId", _PNC_ID.match, "YY/NNNNNNNA, e.g. 26/123456A")
    ) is not None:
        local_ids["pnc"] = pnc
    if (
        nominal := _checked(
            subject, "NominalId", _NOMINAL.match, "1 to 64 letters, digits and / _ . : -"
        )
    ) is not None:
        local_ids[f"{r.agency_id}-nominal"] = nominal
    nhs = _checked(
        subject, "NHSNumber", is_valid_nhs_number, "10 digits with a valid mod 11 check digit"
    )
    dob = subject.child("DOB")
    identifiers = {
        "nhs_number": nhs,
        "local_ids": local_ids,
        "given_name": subject.maybe_value("Forename"),
        "family_name": subject.maybe_value("Surname"),
        "date_of_birth": None if dob is None else dob.day(dob.text()),
    }
    if not any(identifiers.values()):
        raise subject.error("identifies no child", "at least one of " + ", ".join(_SUBJECT))
    return {"identifiers": identifiers}


def _checked(subject: Node, name: str, valid: Callable[[str], object], expected: str) -> str | None:
    node = subject.child(name)
    text = None if node is None else node.text()
    if node is not None and text is not None and not valid(text):
        raise node.error("is not valid", expected)
    return text


def _acknowledged(r: Record) -> Data:
    return {"by": r.officer, "note": r.node.maybe_value("Narrative")}


def _plan_agreed(r: Record) -> Data:
    plan = r.node.must("Plan")
    plan.only(("Step", "AgreedBy", "AgreedTimescale"))
    steps = []
    for step in plan.children("Step"):
        step.only((), ("owner", "due"))
        due = step.attr("due")
        steps.append(
            {
                "description": step.text(),
                "owner_agency": r.agency(step, "owner"),
                "due": None if due is None else step.day(due, "due"),
            }
        )
    agreed = plan.child("AgreedTimescale")
    return {
        "by": r.officer,
        "plan": {
            "summary": r.node.value("Narrative"),
            "actions": steps,
            "agreed_by": agencies(r, plan.must("AgreedBy")),
            "agreed_timescale": None if agreed is None else timescale(agreed),
        },
    }


def _discussion_recorded(r: Record) -> Data:
    held = r.node.must("Discussion")
    held.only(("Participant", "Decision"), ("heldAt", "method"))
    participants = []
    for person in held.children("Participant"):
        person.only((), ("agency", "role"))
        role = person.enum(person.need("role"), ROLES, "role")
        participants.append(
            {"agency_id": r.agency(person, "agency"), "name": person.text(), "role": role}
        )
    return {
        "by": r.officer,
        "held_at": held.instant(held.need("heldAt"), "heldAt"),
        "method": held.enum(held.need("method"), METHODS, "method"),
        "participants": participants,
        "summary": r.node.value("Narrative"),
        "decisions": [decision.text() for decision in held.children("Decision")],
    }


def _escalated(r: Record) -> Data:
    evidence = r.node.must("Evidence")
    evidence.only(("Attempt",), ("exhausted",))
    attempts = []
    for attempt in evidence.children("Attempt"):
        attempt.only((), ("at", "method", "with"))
        with_codes = (attempt.attr("with") or "").split()
        attempts.append(
            {
                "at": attempt.instant(attempt.need("at"), "at"),
                "method": attempt.enum(attempt.need("method"), METHODS, "method"),
                "summary": attempt.text(),
                "with_agencies": [r.agency(attempt, "with", code) for code in with_codes],
            }
        )
    data: Data = {
        "by": r.officer,
        "evidence": {
            "attempts": attempts,
            "exhausted": evidence.boolean(evidence.need("exhausted"), "exhausted"),
            "reason": r.node.maybe_value("Narrative"),
        },
    }
    if (target := r.node.child("EscalateTo")) is not None:
        target.only((), ("stage", "nextTier"))
        stage, next_tier = target.attr("stage"), target.attr("nextTier")
        data["to_stage"] = (
            None if stage is None else target.integer(stage, low=1, high=20, attr="stage")
        )
        data["within_stage_tier"] = next_tier is not None and target.boolean(next_tier, "nextTier")
    return data


def _resolved(r: Record) -> Data:
    outcome = r.node.must("Outcome")
    outcome.only(
        ("AgreedBy", "OutstandingIssues", "HowPursued", "LearningPoint"),
        ("kind", "writtenConfirmation"),
    )
    written = outcome.need("writtenConfirmation")
    return {
        "by": r.officer,
        "outcome": {
            "kind": outcome.enum(outcome.need("kind"), OUTCOMES, "kind"),
            "summary": r.node.value("Narrative"),
            "agreed_by": agencies(r, outcome.child("AgreedBy")),
            "written_confirmation": outcome.boolean(written, "writtenConfirmation"),
            "outstanding_issues": outcome.maybe_value("OutstandingIssues"),
            "how_outstanding_pursued": outcome.maybe_value("HowPursued"),
            "learning_points": [p.text() for p in outcome.children("LearningPoint")],
        },
    }


def _withdrawn(r: Record) -> Data:
    return {"by": r.officer, "reason": r.node.value("Narrative")}


def _flags_changed(r: Record) -> Data:
    holder = r.node.must("Flags")
    holder.only(("Flag",))
    changes: dict[str, list[Flag]] = {"set": [], "cleared": []}
    for flag in holder.children("Flag"):
        flag.only((), ("change",))
        change = flag.enum(flag.need("change"), _CHANGES, "change")
        changes[change].append(flag.enum(flag.text(), FLAGS))
    if not changes["set"] and not changes["cleared"]:
        raise holder.error("changes no flag", 'at least one <Flag change="Set|Cleared">')
    return {"by": r.officer, **changes}


BUILDERS: Final[Mapping[EventType, Callable[[Record], Data]]] = {
    EventType.RAISED: _raised,
    EventType.ACKNOWLEDGED: _acknowledged,
    EventType.PLAN_AGREED: _plan_agreed,
    EventType.DISCUSSION_RECORDED: _discussion_recorded,
    EventType.ESCALATED: _escalated,
    EventType.RESOLVED: _resolved,
    EventType.WITHDRAWN: _withdrawn,
    EventType.FLAGS_CHANGED: _flags_changed,
}
