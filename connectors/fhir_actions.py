"""The data of each agency action, read from one version of an escalation Task.

``TaskView`` holds what every action needs (the actor, the latest note of the agency, the
inputs); one builder per action turns it into the common schema's data model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from fhir.resources.R4B.task import Task
from pydantic import BaseModel

from connectors.base import TranslationError
from connectors.fhir_codes import CONCERN_SYSTEM, Ext
from connectors.fhir_inputs import Inputs, Item, aware, narrative
from connectors.fhir_parse import Located
from connectors.fhir_people import People
from schemas import actions as a
from schemas.common import AgencyKind, ConcernCategory, Flag
from schemas.envelope import EventType
from schemas.people import Actor, Party

__all__ = ["TaskView", "action_data"]

E = TypeVar("E", bound=StrEnum)
_MAX_PARTIES: Final = 20


@dataclass(frozen=True)
class TaskView:
    """One Task version as the action builders read it."""

    item: Located
    task: Task
    people: People
    inputs: Inputs
    actor: Actor
    note: str | None
    agencyref: str | None
    stage: int | None
    partnership: str | None

    @property
    def path(self) -> str:
        return self.item.path

    def agency(self, item: Item) -> str:
        """The agency an input names by valueReference or valueIdentifier."""
        if item.input.valueReference is not None:
            ref = item.input.valueReference
            return self.people.agency(ref, within=self.item, path=f"{item.path}.valueReference")
        return self.people.agency_of(
            item.input.valueIdentifier, path=f"{item.path}.valueIdentifier"
        )


def action_data(action: EventType, view: TaskView) -> BaseModel:
    """The common-schema data of ``action`` as this Task version states it."""
    return _BUILDERS[action](view)


def enum_value(kind: type[E], value: str | None, *, path: str) -> E:
    """``value`` as a member of ``kind``, or an error listing the members."""
    try:
        return kind(value or "")
    except ValueError:
        raise TranslationError(
            "is not a code the escalation profile defines here",
            path=path,
            expected="one of " + ", ".join(member.value for member in kind),
        ) from None


def _raised(v: TaskView) -> a.RaisedData:
    item = v.inputs.one("partnership")
    partnership = item.code_value("a partnership id") if item is not None else v.partnership
    if not partnership:
        raise TranslationError(
            "names no partnership",
            path=v.inputs.path,
            expected="an input of type 'partnership', or a partnership in the connector's "
            "configuration",
        )
    timescale = v.inputs.one("agreed-timescale")
    summary = v.task.description or v.note
    return a.RaisedData(
        partnership=partnership,
        raised_by=v.actor,
        parties=_parties(v),
        child=v.people.child(v.task.for_fhir, within=v.item, path=f"{v.path}.for"),
        concern_categories=_concerns(v),
        flags=_flags(v, "flag"),
        summary=narrative(summary, path=f"{v.path}.description", what="a summary of the concern"),
        agreed_timescale=timescale.timescale() if timescale is not None else None,
    )


def _parties(v: TaskView) -> tuple[Party, ...]:
    others: list[str] = []
    if v.task.owner is not None:
        others.append(v.people.agency(v.task.owner, within=v.item, path=f"{v.path}.owner"))
    others += [v.agency(item) for item in v.inputs.all("party")]
    ids = list(dict.fromkeys([v.actor.agency_id, *others]))
    if not 2 <= len(ids) <= _MAX_PARTIES:
        raise TranslationError(
            "does not name another agency" if len(ids) < 2 else "names too many agencies",
            path=f"{v.path}.owner",
            expected="the organisation the disagreement is with, other than the sender "
            "(more in inputs of type 'party'; at most 20 agencies in all)",
        )
    own = Party(
        agency_id=ids[0], kind=AgencyKind.HEALTH, case_reference=v.agencyref, contact=v.actor
    )
    return (own, *(Party(agency_id=agency, kind=AgencyKind.OTHER) for agency in ids[1:]))


def _concerns(v: TaskView) -> tuple[ConcernCategory, ...]:
    found: list[ConcernCategory] = []
    reason = v.task.reasonCode
    for j, coding in enumerate((reason.coding or []) if reason is not None else []):
        if coding.system == CONCERN_SYSTEM:
            where = f"{v.path}.reasonCode.coding[{j}].code"
            found.append(enum_value(ConcernCategory, coding.code, path=where))
    for item in v.inputs.all("concern"):
        code = item.code_value("a concern category")
        found.append(enum_value(ConcernCategory, code, path=f"{item.path}.valueCode"))
    if not found:
        raise TranslationError(
            "names no concern category",
            path=f"{v.path}.reasonCode",
            expected=f"at least one coding with system {CONCERN_SYSTEM} and a code of: "
            + ", ".join(c.value for c in ConcernCategory),
        )
    return tuple(dict.fromkeys(found))


def _flags(v: TaskView, code: str) -> tuple[Flag, ...]:
    return tuple(
        enum_value(Flag, item.code_value("a flag"), path=f"{item.path}.valueCode")
        for item in v.inputs.all(code)
    )


def _acknowledged(v: TaskView) -> a.AcknowledgedData:
    note = narrative(v.note, path=f"{v.path}.note", what="a note") if v.note else None
    return a.AcknowledgedData(by=v.actor, note=note)


def _plan_agreed(v: TaskView) -> a.PlanAgreedData:
    actions = tuple(_plan_action(v, item) for item in v.inputs.all("plan-action"))
    agreed = tuple(v.agency(item) for item in v.inputs.all("agreed-by"))
    timescale = v.inputs.one("agreed-timescale")
    plan = a.Plan(
        summary=narrative(v.note, path=f"{v.path}.note", what="the agreed plan of action"),
        actions=actions,
        agreed_by=tuple(dict.fromkeys(agreed)) or (v.actor.agency_id,),
        agreed_timescale=timescale.timescale() if timescale is not None else None,
    )
    return a.PlanAgreedData(by=v.actor, plan=plan)


def _plan_action(v: TaskView, item: Item) -> a.PlanAction:
    owner = v.actor.agency_id
    for index, ext in enumerate(item.input.extension or []):
        if ext.url == Ext.ACTION_OWNER:
            where = f"{item.path}.extension[{index}].valueIdentifier"
            owner = v.people.agency_of(ext.valueIdentifier, path=where)
    return a.PlanAction(
        description=item.text("the action"),
        owner_agency=owner,
        due=item.extension_date(Ext.ACTION_DUE),
    )


def _escalated(v: TaskView) -> a.EscalatedData:
    attempts = tuple(_attempt(item) for item in v.inputs.all("attempt"))
    if not attempts:
        raise TranslationError(
            "carries no evidence of attempts at the current stage",
            path=v.inputs.path,
            expected="at least one input of type 'attempt' (valueAnnotation: when, and what "
            "was tried)",
        )
    exhausted = v.inputs.required(
        "exhausted", "an input of type 'exhausted' with valueBoolean true: the attempts failed"
    )
    tier = v.inputs.one("next-tier")
    reason = narrative(v.note, path=f"{v.path}.note", what="a reason") if v.note else None
    return a.EscalatedData(
        by=v.actor,
        evidence=a.Evidence(attempts=attempts, exhausted=exhausted.flag(), reason=reason),
        to_stage=v.stage,
        within_stage_tier=tier.flag() if tier is not None else False,
    )


def _attempt(item: Item) -> a.Attempt:
    note = item.annotation("attempt to resolve the disagreement")
    method = item.extension_code(Ext.DISCUSSION_METHOD)
    where = f"{item.path}.extension"
    at = aware(note.time)
    assert at is not None  # checked by Item.annotation
    return a.Attempt(
        at=at,
        method=enum_value(a.DiscussionMethod, method, path=where)
        if method
        else a.DiscussionMethod.OTHER,
        summary=narrative(note.text, path=f"{item.path}.valueAnnotation.text", what="a summary"),
    )


def _resolved(v: TaskView) -> a.ResolvedData:
    kind = v.inputs.required("outcome", "an input of type 'outcome' with valueCode, e.g. 'agreed'")
    written = v.inputs.required(
        "written-confirmation",
        "an input of type 'written-confirmation' with valueBoolean: the parties confirmed the "
        "outcome in writing",
    )
    issues, pursued = v.inputs.one("outstanding-issues"), v.inputs.one("how-outstanding-pursued")
    outcome = a.Outcome(
        kind=enum_value(
            a.OutcomeKind, kind.code_value("an outcome"), path=f"{kind.path}.valueCode"
        ),
        summary=narrative(v.note, path=f"{v.path}.note", what="the agreed outcome"),
        agreed_by=tuple(dict.fromkeys(v.agency(item) for item in v.inputs.all("agreed-by"))),
        written_confirmation=written.flag(),
        outstanding_issues=issues.text("outstanding issues") if issues else None,
        how_outstanding_pursued=pursued.text("how they are pursued") if pursued else None,
        learning_points=tuple(i.text("a learning point") for i in v.inputs.all("learning-point")),
    )
    return a.ResolvedData(by=v.actor, outcome=outcome)


def _withdrawn(v: TaskView) -> a.WithdrawnData:
    reason = v.note or (v.task.statusReason.text if v.task.statusReason is not None else None)
    return a.WithdrawnData(
        by=v.actor, reason=narrative(reason, path=f"{v.path}.note", what="the reason")
    )


def _flags_changed(v: TaskView) -> a.FlagsChangedData:
    set_, cleared = _flags(v, "flag"), _flags(v, "flag-cleared")
    if not set_ and not cleared:
        raise TranslationError(
            "changes no flag",
            path=v.inputs.path,
            expected="inputs of type 'flag' (set) or 'flag-cleared' with a flag code",
        )
    return a.FlagsChangedData(by=v.actor, set=set_, cleared=cleared)


_BUILDERS: Final[dict[EventType, Callable[[TaskView], BaseModel]]] = {
    EventType.RAISED: _raised,
    EventType.ACKNOWLEDGED: _acknowledged,
    EventType.PLAN_AGREED: _plan_agreed,
    EventType.ESCALATED: _escalated,
    EventType.RESOLVED: _resolved,
    EventType.WITHDRAWN: _withdrawn,
    EventType.FLAGS_CHANGED: _flags_changed,
}
