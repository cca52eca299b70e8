"""Task.input of the escalation profile: typed by a code of the hub's escalation-input system.

Inputs typed by other systems are the trust's own and are left alone; an unknown code of the
hub's system is refused, so that a misspelt input is never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.task import Task, TaskInput

from connectors.base import TranslationError
from connectors.fhir_codes import INPUT_SYSTEM, TIME_UNIT_SYSTEM
from schemas.common import TimeUnit
from schemas.procedure import Timescale

__all__ = ["INPUT_CODES", "Inputs", "aware", "narrative"]

INPUT_CODES: Final = [
    "partnership",
    "party",
    "concern",
    "flag",
    "flag-cleared",
    "agreed-timescale",
    "attempt",
    "exhausted",
    "next-tier",
    "plan-action",
    "agreed-by",
    "outcome",
    "written-confirmation",
    "learning-point",
    "outstanding-issues",
    "how-outstanding-pursued",
]
_NARRATIVE_MAX: Final = 20_000


def aware(value: object) -> datetime | None:
    """A FHIR dateTime/instant as an aware datetime; None for partial dates or none."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None


def narrative(text: str | None, *, path: str, what: str) -> str:
    """Free text for the common schema (1-20,000 characters once trimmed)."""
    value = (text or "").strip()
    if not value or len(value) > _NARRATIVE_MAX:
        raise TranslationError(
            f"has no {what}" if not value else "is too long",
            path=path,
            expected=f"{what} (free text, 1 to 20,000 characters)",
        )
    return value


@dataclass(frozen=True)
class Item:
    """One input of the hub's system: its code, FHIRPath and element."""

    code: str
    path: str
    input: TaskInput

    def text(self, what: str) -> str:
        value = self.input.valueString or self.input.valueMarkdown
        if value is None and self.input.valueAnnotation is not None:
            value = self.input.valueAnnotation.text
        return narrative(value, path=f"{self.path}.valueString", what=what)

    def code_value(self, expected: str) -> str:
        coding = self.input.valueCoding
        concept = self.input.valueCodeableConcept
        if coding is None and concept is not None and concept.coding:
            coding = concept.coding[0]
        value = self.input.valueCode or (coding.code if coding is not None else None)
        if not value:
            raise TranslationError("has no code", path=f"{self.path}.valueCode", expected=expected)
        return value

    def flag(self) -> bool:
        if self.input.valueBoolean is None:
            raise TranslationError(
                "has no valueBoolean", path=f"{self.path}.valueBoolean", expected="true or false"
            )
        return self.input.valueBoolean

    def annotation(self, what: str) -> Annotation:
        note = self.input.valueAnnotation
        if note is None or aware(note.time) is None or not (note.text or "").strip():
            raise TranslationError(
                f"is not a dated {what}",
                path=f"{self.path}.valueAnnotation",
                expected="an Annotation with time (a dateTime with time zone) and text: "
                f"the {what}",
            )
        return note

    def extension_code(self, url: str) -> str | None:
        for ext in self.input.extension or []:
            if ext.url == url:
                return ext.valueCode
        return None

    def extension_date(self, url: str) -> date | None:
        for index, ext in enumerate(self.input.extension or []):
            if ext.url == url:
                if not isinstance(ext.valueDate, date):
                    raise TranslationError(
                        "is not a full date",
                        path=f"{self.path}.extension[{index}].valueDate",
                        expected="a date (YYYY-MM-DD)",
                    )
                return ext.valueDate
        return None

    def timescale(self) -> Timescale:
        quantity = self.input.valueQuantity or self.input.valueDuration
        units = [unit.value for unit in TimeUnit]
        amount = quantity.value if quantity is not None else None
        code = quantity.code if quantity is not None else None
        if amount is None or amount != int(amount) or not 0 <= amount <= 366 or code not in units:
            raise TranslationError(
                "is not a timescale",
                path=f"{self.path}.valueQuantity",
                expected=f"a whole value of 0-366 with system {TIME_UNIT_SYSTEM} and code "
                + ", ".join(units),
            )
        return Timescale(amount=int(amount), unit=TimeUnit(code))


class Inputs:
    """The hub-typed inputs of one Task, by code."""

    def __init__(self, task: Task, *, path: str) -> None:
        self.path = f"{path}.input"
        self._items: list[Item] = []
        for index, entry in enumerate(task.input or []):
            for j, coding in enumerate((entry.type.coding or []) if entry.type else []):
                if coding.system != INPUT_SYSTEM:
                    continue
                if coding.code not in INPUT_CODES:
                    raise TranslationError(
                        "is not an input type of the escalation profile",
                        path=f"{self.path}[{index}].type.coding[{j}].code",
                        expected="one of " + ", ".join(INPUT_CODES),
                    )
                self._items.append(Item(coding.code, f"{self.path}[{index}]", entry))

    def all(self, code: str) -> list[Item]:
        return [item for item in self._items if item.code == code]

    def one(self, code: str) -> Item | None:
        found = self.all(code)
        return found[-1] if found else None

    def required(self, code: str, expected: str) -> Item:
        found = self.one(code)
        if found is None:
            raise TranslationError(
                f"has no input of type '{code}'", path=self.path, expected=expected
            )
        return found
