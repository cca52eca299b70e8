"""People in FHIR terms: the person acting, the organisations (agencies) and the child.

A person is a contained (or Bundle) PractitionerRole, a Practitioner, or a Reference whose
``display`` is the name; the hub role rides in PractitionerRole.code or the ``actor-role``
extension. Organisations are identified by a code (an ODS code, usually) that the connector's
configuration maps to a hub agency id. The child is a Patient with an NHS number.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.reference import Reference

from connectors.base import TranslationError
from connectors.fhir_codes import NHS_NUMBER_SYSTEM, ODS_SYSTEM, ROLE_SYSTEM, Ext
from connectors.fhir_parse import Located, Resolver
from schemas.people import Actor, Child, ChildIdentifiers, Role

__all__ = ["People", "valid_nhs_number"]

_ROLES: Final = ", ".join(role.value for role in Role)
_NHS: Final = re.compile(r"^\d{3} ?\d{3} ?\d{4}$")
_NAME_MAX: Final = 200


def valid_nhs_number(value: str) -> str | None:
    """The 10 digits of a well-formed NHS number (modulus 11 check digit), else None."""
    if not _NHS.match(value):
        return None
    digits = value.replace(" ", "")
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return digits if check != 10 and check == int(digits[9]) else None


class People:
    """Reads actors, agencies and the child of one document."""

    def __init__(self, *, resolver: Resolver, agency_id: str, organisations: dict[str, str]):
        self.resolver, self.agency_id, self.organisations = resolver, agency_id, organisations

    def actor(self, ref: Reference | None, *, within: Located, path: str) -> Actor:
        """The sending agency's person named by ``ref`` (name and hub role)."""
        found = self.resolver.resolve(ref, within=within)
        role = _role_extension(ref, path=path)
        name = ref.display if ref is not None else None
        if found is not None and isinstance(found.resource, PractitionerRole):
            role = _role_code(found.resource, path=found.path) or role
            name = self._practitioner_name(found.resource, within=within) or name
        elif found is not None and isinstance(found.resource, Practitioner):
            name = _human(found.resource.name) or name
        if not name or len(name) > _NAME_MAX:
            raise TranslationError(
                "does not name the person acting",
                path=f"{path}.display",
                expected="the person's name (up to 200 characters) in Reference.display, or a "
                "reference to a PractitionerRole whose practitioner.display is the name",
            )
        return Actor(agency_id=self.agency_id, name=name, role=role or Role.PRACTITIONER)

    def named_actor(self, name: str | None, *, path: str) -> Actor:
        """An actor known only by name (Annotation.authorString): a practitioner."""
        if not name or len(name) > _NAME_MAX:
            raise TranslationError(
                "does not name the person acting", path=path, expected="a name (1-200 characters)"
            )
        return Actor(agency_id=self.agency_id, name=name, role=Role.PRACTITIONER)

    def agency(self, ref: Reference | None, *, within: Located, path: str) -> str:
        """The hub agency id of the organisation ``ref`` points to (by its code)."""
        found = self.resolver.resolve(ref, within=within)
        if found is not None and isinstance(found.resource, PractitionerRole):
            org = found.resource.organization
            return self.agency(org, within=within, path=f"{found.path}.organization")
        if found is not None and isinstance(found.resource, Organization):
            ids = list(enumerate(found.resource.identifier or []))
            candidates = [(f"{found.path}.identifier[{i}].value", ident) for i, ident in ids]
        elif ref is not None and ref.identifier is not None:
            candidates = [(f"{path}.identifier.value", ref.identifier)]
        else:
            raise TranslationError(
                "does not identify an organisation",
                path=f"{path}.identifier",
                expected=f"an Organization identifier: an ODS code (system {ODS_SYSTEM}) or "
                "another code registered in the connector's organisations",
            )
        return self._registered(candidates)

    def agency_of(self, ident: Identifier | None, *, path: str) -> str:
        """The hub agency id of a bare organisation identifier (e.g. in Task.input)."""
        if ident is None:
            raise TranslationError(
                "does not identify an organisation",
                path=path,
                expected=f"an Organization identifier: an ODS code (system {ODS_SYSTEM})",
            )
        return self._registered([(f"{path}.value", ident)])

    def child(self, ref: Reference | None, *, within: Located, path: str) -> Child:
        """The child: NHS number and other identifiers, name and date of birth."""
        found = self.resolver.resolve(ref, within=within)
        if found is not None and isinstance(found.resource, Patient):
            return Child(identifiers=_patient(found.resource, path=found.path))
        if ref is not None and ref.identifier is not None:
            ids = _identifiers([ref.identifier], path=f"{path}.identifier", indexed=False)
            return Child(identifiers=ids)
        raise TranslationError(
            "does not identify the child",
            path=path,
            expected="a reference to a contained (or Bundle) Patient, or Reference.identifier, "
            f"with an NHS number (system {NHS_NUMBER_SYSTEM})",
        )

    def _practitioner_name(self, role: PractitionerRole, *, within: Located) -> str | None:
        """The name of the role's practitioner (contained references resolve in ``within``)."""
        ref = role.practitioner
        found = self.resolver.resolve(ref, within=within)
        if found is not None and isinstance(found.resource, Practitioner):
            return _human(found.resource.name)
        return ref.display if ref is not None else None

    def _registered(self, candidates: list[tuple[str, Identifier]]) -> str:
        for _, ident in sorted(candidates, key=lambda c: c[1].system != ODS_SYSTEM):
            if ident.value in self.organisations:
                return self.organisations[ident.value]
        raise TranslationError(
            "is not an organisation code this connector knows",
            path=candidates[0][0] if candidates else "identifier",
            expected="a code registered in the connector's organisations",
        )


def _role_extension(ref: Reference | None, *, path: str) -> Role | None:
    for index, ext in enumerate((ref.extension or []) if ref is not None else []):
        if ext.url == Ext.ACTOR_ROLE:
            return _role(ext.valueCode, path=f"{path}.extension[{index}].valueCode")
    return None


def _role_code(role: PractitionerRole, *, path: str) -> Role | None:
    for i, concept in enumerate(role.code or []):
        for j, coding in enumerate(concept.coding or []):
            if coding.system == ROLE_SYSTEM:
                return _role(coding.code, path=f"{path}.code[{i}].coding[{j}].code")
    return None


def _role(code: str | None, *, path: str) -> Role:
    try:
        return Role(code or "")
    except ValueError:
        raise TranslationError(
            "is not a role of the hub", path=path, expected=f"one of {_ROLES}"
        ) from None


def _human(names: list[HumanName] | None) -> str | None:
    for name in names or []:
        parts = [part for part in (*(name.given or []), name.family) if part]
        text = name.text or " ".join(parts)
        if text:
            return text
    return None


def _patient(patient: Patient, *, path: str) -> ChildIdentifiers:
    ids = _identifiers(patient.identifier or [], path=f"{path}.identifier", indexed=True)
    name = patient.name[0] if patient.name else None
    born = patient.birthDate
    if born is not None and not isinstance(born, date):
        raise TranslationError(
            "is a partial date", path=f"{path}.birthDate", expected="a full date (YYYY-MM-DD)"
        )
    given = name.given[0] if name is not None and name.given else None
    family = name.family if name is not None else None
    for value, where in ((given, "given[0]"), (family, "family")):
        if value is not None and len(value) > _NAME_MAX:
            raise TranslationError(
                "is too long", path=f"{path}.name[0].{where}", expected="up to 200 characters"
            )
    return ids.model_copy(
        update={"given_name": given, "family_name": family, "date_of_birth": born}
    )


def _identifiers(idents: list[Identifier], *, path: str, indexed: bool) -> ChildIdentifiers:
    nhs: str | None = None
    local: dict[str, str] = {}
    for index, ident in enumerate(idents):
        where = f"{path}[{index}]" if indexed else path
        if ident.system == NHS_NUMBER_SYSTEM:
            nhs = valid_nhs_number(ident.value or "")
            if nhs is None:
                raise TranslationError(
                    "is not a valid NHS number",
                    path=f"{where}.value",
                    expected="10 digits with a correct modulus 11 check digit",
                )
        elif ident.system and ident.value:
            local[ident.system] = ident.value
    if nhs is None and not local:
        raise TranslationError(
            "does not identify the child",
            path=path,
            expected=f"an NHS number (system {NHS_NUMBER_SYSTEM}) or another identifier "
            "with a system and a value",
        )
    return ChildIdentifiers(nhs_number=nhs, local_ids=local)
