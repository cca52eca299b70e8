"""What one version of a Task states: that it is an escalation, which action, which case.

The mapping of Task.status and Task.businessStatus to the agency's action is the table in
``fhir_codes`` (documented in ``docs/connector-fhir.md``).
"""

from __future__ import annotations

import re
from typing import Final

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.task import Task

from connectors.base import TranslationError
from connectors.fhir_actions import enum_value
from connectors.fhir_codes import (
    ACTION_CODES,
    ACTION_STATUSES,
    DEFAULT_ACTION,
    ESCALATION_CODE,
    ESCALATION_ID_SYSTEM,
    ESCALATION_SYSTEM,
    STAGE_SYSTEM,
    STATUS_REFUSALS,
    TASK_INTENTS,
    TASK_STATUSES,
    ActionCode,
    Ext,
    stage_of,
)
from schemas.envelope import EventType

__all__ = ["action_of", "check_code", "hub_note", "references"]

_ID: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
_REFERENCE_MAX: Final = 128


def references(idents: list[Identifier] | None, *, path: str) -> tuple[str | None, str | None]:
    """(the trust's case reference, the hub's escalation id) among a Task's identifiers."""
    agencyref = subject = None
    for index, ident in enumerate(idents or []):
        value, where = ident.value, f"{path}[{index}].value"
        if not value:
            continue
        if ident.system == ESCALATION_ID_SYSTEM:
            subject = _checked(value, where, _ID.match(value) is not None, "an escalation id")
        elif agencyref is None or ident.use == "official":
            fits = len(value) <= _REFERENCE_MAX
            agencyref = _checked(value, where, fits, "a case reference of up to 128 characters")
    return agencyref, subject


def _checked(value: str, path: str, ok: bool, expected: str) -> str:
    if not ok:
        raise TranslationError("is not usable as an identifier", path=path, expected=expected)
    return value


def check_code(task: Task, *, path: str) -> None:
    """Refuse a Task that is not a professional-disagreement escalation (Task.code, intent)."""
    codings = (task.code.coding or []) if task.code is not None else []
    for j, coding in enumerate(codings):
        if coding.system == ESCALATION_SYSTEM and coding.code != ESCALATION_CODE:
            raise TranslationError(
                "is not the escalation code",
                path=f"{path}.code.coding[{j}].code",
                expected=f"'{ESCALATION_CODE}'",
            )
        if coding.system == ESCALATION_SYSTEM:
            break
    else:
        raise TranslationError(
            "does not identify a professional-disagreement escalation",
            path=f"{path}.code",
            expected=f"a coding with system {ESCALATION_SYSTEM} and code '{ESCALATION_CODE}'",
        )
    if task.intent not in TASK_INTENTS:
        raise TranslationError(
            "is not a FHIR R4 TaskIntent", path=f"{path}.intent", expected=" | ".join(TASK_INTENTS)
        )


def action_of(task: Task, *, path: str) -> tuple[EventType, int | None]:
    """The action this Task version states (businessStatus, else status), and a stage asked for."""
    status = task.status or ""
    if status not in TASK_STATUSES:
        raise TranslationError(
            "is not a FHIR R4 TaskStatus", path=f"{path}.status", expected=" | ".join(TASK_STATUSES)
        )
    action, stage = None, None
    business = task.businessStatus
    for j, coding in enumerate((business.coding or []) if business is not None else []):
        where = f"{path}.businessStatus.coding[{j}].code"
        if coding.system == ESCALATION_SYSTEM:
            action = enum_value(ActionCode, coding.code, path=where)
        elif coding.system == STAGE_SYSTEM:
            stage = stage_of(coding.code)
            if stage is None:
                raise TranslationError(
                    "is not a stage code", path=where, expected="stage-N, e.g. stage-2"
                )
    if action is None:
        if status not in DEFAULT_ACTION:
            raise TranslationError(
                STATUS_REFUSALS[status],
                path=f"{path}.businessStatus",
                expected=f"a coding of {ESCALATION_SYSTEM}: " + ", ".join(ACTION_CODES),
            )
        return DEFAULT_ACTION[status], stage
    event = ACTION_CODES[action.value]
    if status not in ACTION_STATUSES[event]:
        raise TranslationError(
            f"does not fit businessStatus '{action.value}'",
            path=f"{path}.status",
            expected=" or ".join(ACTION_STATUSES[event]),
        )
    return event, stage


def hub_note(note: Annotation) -> bool:
    """A note the hub wrote into an update (tagged note-kind), not the agency's own."""
    return any(ext.url == Ext.NOTE_KIND for ext in note.extension or [])
