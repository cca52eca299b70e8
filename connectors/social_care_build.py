"""Inbound building for the social care connector: a native workflow event -> common data.

Every refusal is a TranslationError at the native path (``partnerAgencies[1].code``) saying
what is expected; none repeats a value from the document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from connectors import social_care_native as n
from connectors.base import TranslationError
from connectors.social_care_native import SocialCareConfig

__all__ = ["BUILDERS", "action_of"]

Data = dict[str, Any]


def _one_of(codes: Iterable[str]) -> str:
    return "one of " + ", ".join(sorted(codes))


def action_of(event: n.WorkflowEvent) -> str:
    """The common action a workflow event stands for."""
    if (event.event_type, None) in n.STEP_ACTIONS:
        return n.STEP_ACTIONS[(event.event_type, None)]
    if event.event_type not in n.EVENT_STATUS:
        types = {kind for kind, _ in n.STEP_ACTIONS}
        raise TranslationError("unknown event type", path="eventType", expected=_one_of(types))
    step = _required(event.step, "step", "the workflow step this event is about")
    action = n.STEP_ACTIONS.get((event.event_type, step.step_type))
    if action is None:
        steps = {s for kind, s in n.STEP_ACTIONS if kind == event.event_type and s}
        raise TranslationError(
            "this step type is not part of the professional disagreement workflow for this "
            "event type",
            path="step.stepType",
            expected=_one_of(steps),
        )
    if step.status is not None and step.status != n.EVENT_STATUS[event.event_type]:
        raise TranslationError(
            "the step status contradicts the event type",
            path="step.status",
            expected=f"{n.EVENT_STATUS[event.event_type]} (or leave it out)",
        )
    return action


def _required(value: Any, path: str, what: str) -> Any:
    if value is None:
        raise TranslationError("this field is missing", path=path, expected=what)
    return value


def _code(table: dict[str, Any], code: str, path: str) -> Any:
    if code not in table:
        raise TranslationError("unknown code", path=path, expected=_one_of(table))
    return table[code]


def _agency(config: SocialCareConfig, code: str, path: str) -> str:
    if code not in config.organisations:
        raise TranslationError(
            "this organisation code is not mapped to a hub agency",
            path=path,
            expected="a code listed in the connector's config.organisations",
        )
    return config.organisations[code]


def _actor(event: n.WorkflowEvent, agency_id: str) -> Data:
    role = _code(n.WORKER_ROLES, event.worker.role, "worker.role")
    return {"agency_id": agency_id, "name": event.worker.name, "role": role}


def _note(event: n.WorkflowEvent, what: str) -> str:
    note = _required(event.case_note, "caseNote", what)
    text: str = note.text
    return text


def _raised(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    actor = _actor(event, agency_id)
    person = _required(event.person, "person", "the child's person record")
    partnership = config.partnership
    if partnership is None:
        raise TranslationError(
            "no partnership is configured for this connector",
            path="(connector config).partnership",
            expected="the connector registered with config.partnership",
        )
    concerns = [_code(n.CONCERNS, c, f"concerns[{i}]") for i, c in enumerate(event.concerns)]
    if not concerns:
        raise TranslationError("no concern is given", path="concerns", expected=_one_of(n.CONCERNS))
    return {
        "partnership": partnership,
        "raised_by": actor,
        "parties": _parties(event, agency_id, config, actor),
        "child": {"identifiers": _child(person, config)},
        "concern_categories": concerns,
        "flags": sorted({n.FLAGS[s] for s in person.statuses if s in n.FLAGS}),
        "summary": _note(event, "a case note whose text says what the disagreement is"),
    }


def _parties(
    event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig, actor: Data
) -> list[Data]:
    parties: list[Data] = [
        {"agency_id": agency_id, "kind": "social_care", "case_reference": event.case_id}
    ]
    parties[0]["contact"] = actor
    for i, partner in enumerate(event.partner_agencies):
        where = f"partnerAgencies[{i}]"
        other = _agency(config, partner.code, f"{where}.code")
        if any(p["agency_id"] == other for p in parties):
            raise TranslationError(
                "this organisation appears twice, or is the sender itself",
                path=f"{where}.code",
                expected="each partner agency once, other than your own",
            )
        kind = _code(n.PARTNER_KINDS, partner.agency_type, f"{where}.agencyType")
        party: Data = {"agency_id": other, "kind": kind}
        if partner.case_reference is not None:
            party["case_reference"] = partner.case_reference
        parties.append(party)
    if len(parties) < 2:
        raise TranslationError(
            "no partner agency is named",
            path="partnerAgencies",
            expected="at least one partner agency the disagreement is with",
        )
    return parties


def _child(person: n.Person, config: SocialCareConfig) -> Data:
    identifiers: Data = {"local_ids": {config.system: person.person_id}}
    if person.nhs_number is not None:
        if not _valid_nhs_number(person.nhs_number):
            raise TranslationError(
                "not a valid NHS number",
                path="person.nhsNumber",
                expected="10 digits (spaces allowed) with a valid check digit",
            )
        identifiers["nhs_number"] = person.nhs_number
    for field, value in (
        ("given_name", person.forename),
        ("family_name", person.surname),
        ("date_of_birth", person.date_of_birth),
    ):
        if value is not None:
            identifiers[field] = value
    return identifiers


def _valid_nhs_number(value: str) -> bool:
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isdigit() or len(value) > 12:
        return False
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits[:9])) % 11
    return (0 if check == 11 else check) == int(digits[9])


def _acknowledged(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    data: Data = {"by": _actor(event, agency_id)}
    if event.case_note is not None:
        data["note"] = event.case_note.text
    return data


def _plan_agreed(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    plan = _required(event.step and event.step.action_plan, "step.actionPlan", "the agreed plan")
    where = "step.actionPlan"
    agreed = [agency_id] + [
        _agency(config, code, f"{where}.agreedByCodes[{i}]")
        for i, code in enumerate(plan.agreed_by_codes)
    ]
    actions = [
        {
            "description": action.description,
            "owner_agency": _agency(config, action.owner_code, f"{where}.actions[{i}].ownerCode")
            if action.owner_code
            else agency_id,
            "due": action.due_date,
        }
        for i, action in enumerate(plan.actions)
    ]
    return {
        "by": _actor(event, agency_id),
        "plan": {
            "summary": plan.summary,
            "actions": actions,
            "agreed_by": list(dict.fromkeys(agreed)),
        },
    }


def _escalated(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    step = event.step
    assert step is not None  # action_of required it
    attempts = [
        {
            "at": attempt.attempted_at,
            "method": _code(n.METHODS, attempt.method, f"step.attempts[{i}].method"),
            "summary": attempt.summary,
            "with_agencies": [
                _agency(config, code, f"step.attempts[{i}].withCodes[{j}]")
                for j, code in enumerate(attempt.with_codes)
            ],
        }
        for i, attempt in enumerate(step.attempts)
    ]
    evidence: Data = {"attempts": attempts, "exhausted": step.attempts_exhausted}
    if event.case_note is not None:
        evidence["reason"] = event.case_note.text
    return {
        "by": _actor(event, agency_id),
        "evidence": evidence,
        "to_stage": step.escalation_stage,
        "within_stage_tier": step.within_stage_tier,
    }


def _resolved(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    outcome = _required(event.step and event.step.outcome, "step.outcome", "the outcome")
    where = "step.outcome"
    agreed = [
        _agency(config, code, f"{where}.agreedByCodes[{i}]")
        for i, code in enumerate(outcome.agreed_by_codes)
    ]
    return {
        "by": _actor(event, agency_id),
        "outcome": {
            "kind": _code(n.OUTCOMES, outcome.outcome_type, f"{where}.outcomeType"),
            "summary": _note(event, "a case note whose text records the outcome"),
            "agreed_by": list(dict.fromkeys([agency_id, *agreed])),
            "written_confirmation": outcome.written_confirmation,
            "outstanding_issues": outcome.outstanding_issues,
            "learning_points": list(outcome.learning_points),
        },
    }


def _withdrawn(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    reason = _note(event, "a case note whose text gives the reason")
    return {"by": _actor(event, agency_id), "reason": reason}


def _discussion(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    note = _required(event.case_note, "caseNote", "the case note of the discussion")
    if note.note_type not in n.NOTE_TYPES:
        raise TranslationError(
            "this note type is not a discussion",
            path="caseNote.noteType",
            expected=_one_of(n.NOTE_TYPES),
        )
    held = _required(note.contact_date, "caseNote.contactDate", "when the discussion took place")
    method = _required(note.contact_method, "caseNote.contactMethod", _one_of(n.METHODS))
    return {
        "by": _actor(event, agency_id),
        "held_at": held,
        "method": _code(n.METHODS, method, "caseNote.contactMethod"),
        "summary": note.text,
    }


def _flags_changed(event: n.WorkflowEvent, agency_id: str, config: SocialCareConfig) -> Data:
    person = _required(event.person, "person", "the child's statuses that changed")
    started = sorted({n.FLAGS[s] for s in person.statuses_started if s in n.FLAGS})
    ended = sorted({n.FLAGS[s] for s in person.statuses_ended if s in n.FLAGS})
    if not started and not ended:
        raise TranslationError(
            "no status that matters to the escalation procedure changed",
            path="person.statusesStarted",
            expected=_one_of(n.FLAGS) + " (in statusesStarted or statusesEnded)",
        )
    return {"by": _actor(event, agency_id), "set": started, "cleared": ended}


BUILDERS: dict[str, Callable[[n.WorkflowEvent, str, SocialCareConfig], Data]] = {
    "raised": _raised,
    "acknowledged": _acknowledged,
    "plan_agreed": _plan_agreed,
    "escalated": _escalated,
    "resolved": _resolved,
    "withdrawn": _withdrawn,
    "discussion_recorded": _discussion,
    "flags_changed": _flags_changed,
}
