"""Police XML, read safely: defused parsing, size and depth limits, paths for errors.

Shared by the police connector's inbound and outbound halves. Documents are parsed with
defusedxml with every DTD refused, so no entity is ever declared or expanded and nothing
external is fetched; a document is limited to ``MAX_BYTES`` and ``MAX_DEPTH`` levels.
Every error is a ``TranslationError`` whose path is XPath-style
(``/SafeguardingEscalationRecord/Subject/NHSNumber``; ``(body)`` for the document as a whole)
and never repeats a submitted value; one that stops parsing is a ``MalformedDocument``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import defusedxml.ElementTree as safe_etree
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden

from connectors.base import MalformedDocument, TranslationError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MEDIA_TYPES",
    "NAMESPACE",
    "SCHEMA_VERSION",
    "Node",
    "parse_document",
    "pascal",
    "vocabulary",
]

NAMESPACE: Final = "urn:escalation-hub:police:v1"
SCHEMA_VERSION: Final = "1"
MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 12
MEDIA_TYPES: Final = ("application/xml", "text/xml")
_NS: Final = "{" + NAMESPACE + "}"
_MALFORMED: Final = "Malformed XML"
_REFUSED_DTD: Final = (
    "the document has a document type declaration (<!DOCTYPE>): DTDs are refused, so no "
    "entity is declared or expanded and nothing outside the document is read"
)

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


def pascal(value: str) -> str:
    """``face_to_face`` -> ``FaceToFace``: the police format's spelling of a schema value."""
    return "".join(part[:1].upper() + part[1:] for part in value.split("_"))


def vocabulary(enum: type[E]) -> dict[str, E]:
    """The police spelling of every member of ``enum``, e.g. ``{"LineManager": Role...}``."""
    return {pascal(member.value): member for member in enum}


class _TooDeep(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class _DepthLimited:
    """An ElementTree parser target that stops as soon as elements nest too deeply."""

    def __init__(self, limit: int) -> None:
        self._builder = TreeBuilder()
        self._limit = limit
        self._open: list[str] = []

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._open.append(_local(tag))
        if len(self._open) > self._limit:
            raise _TooDeep("/" + "/".join(self._open[: self._limit + 1]))
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> Element:
        self._open.pop()
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> Element:
        return self._builder.close()


def parse_document(body: bytes, *, roots: Collection[str]) -> Node:
    """Parse ``body`` safely and check its root is one of ``roots`` in the police namespace."""
    if len(body) > MAX_BYTES:
        raise MalformedDocument(
            f"the document is {len(body):,} bytes, over the limit",
            expected=f"at most {MAX_BYTES:,} bytes; split a large export into several documents",
            title=_MALFORMED,
        )
    root = _parse(body)
    name = _local(root.tag)
    if name not in roots:
        raise TranslationError(
            "the root element is not a police escalation document",
            path="/" + name,
            expected=" or ".join(f"<{r}>" for r in sorted(roots)),
        )
    if not root.tag.startswith(_NS):
        raise TranslationError(
            "the root element is not in the police format's namespace",
            path="/" + name,
            expected=f'xmlns="{NAMESPACE}"',
        )
    node = Node(root, "/" + name)
    if node.need("schemaVersion") != SCHEMA_VERSION:
        raise node.error(
            "this schema version is not supported", f'"{SCHEMA_VERSION}"', "schemaVersion"
        )
    return node


def _parse(body: bytes) -> Element:
    parser = safe_etree.DefusedXMLParser(
        target=_DepthLimited(MAX_DEPTH),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(body)
        root: Element = parser.close()
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden):
        raise MalformedDocument(
            _REFUSED_DTD,
            expected="a document without <!DOCTYPE> or entity declarations",
            title="Refused XML",
        ) from None
    except _TooDeep as exc:
        raise MalformedDocument(
            "elements are nested too deeply",
            path=exc.path,
            expected=f"at most {MAX_DEPTH} levels",
            title=_MALFORMED,
        ) from None
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]  # expat's fixed wording, never document content
        raise MalformedDocument(
            f"the document is not well-formed XML ({reason}) at line {line}, column {column}",
            expected="a well-formed XML 1.0 document, UTF-8 encoded",
            position={"line": line, "column": column},
            title=_MALFORMED,
        ) from None
    except (LookupError, ValueError):  # unknown, or multi-byte like UTF-7 or Shift_JIS
        raise MalformedDocument(
            "the XML declaration names an encoding this parser does not read",
            expected='encoding="UTF-8" (or UTF-16, ISO-8859-1, US-ASCII)',
            title=_MALFORMED,
        ) from None
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True)
class Node:
    """One element with its XPath-style path; every accessor raises TranslationError."""

    element: Element
    path: str

    @property
    def name(self) -> str:
        return _local(self.element.tag)

    def error(
        self, problem: str, expected: str | None = None, attr: str | None = None
    ) -> TranslationError:
        """An error about this element (or one of its attributes)."""
        path = f"{self.path}/@{attr}" if attr else self.path
        return TranslationError(problem, path=path, expected=expected)

    def only(self, elements: Collection[str] = (), attributes: Collection[str] = ()) -> None:
        """Refuse child elements, attributes and stray text this element does not allow."""
        for name in self.element.attrib:
            if not name.startswith("{") and name not in attributes:
                raise self.error(
                    "this attribute is not part of the format", _one_of(attributes), name
                )
        if (self.element.text or "").strip() and len(self.element):
            raise self.error("has text outside its child elements", "only child elements")
        for child in self.element:
            if not child.tag.startswith(_NS) or _local(child.tag) not in elements:
                raise TranslationError(
                    "this element is not part of the format here",
                    path=f"{self.path}/{_local(child.tag)}",
                    expected=_one_of(elements) if elements else "no child elements",
                )
            if (child.tail or "").strip():
                raise self.error("has text outside its child elements", "only child elements")

    def children(self, name: str) -> list[Node]:
        """Every ``name`` child, each with its 1-based XPath index."""
        found = self.element.findall(_NS + name)
        return [Node(child, f"{self.path}/{name}[{i}]") for i, child in enumerate(found, 1)]

    def child(self, name: str) -> Node | None:
        """The single ``name`` child, if present (an error if repeated)."""
        found = self.element.findall(_NS + name)
        if len(found) > 1:
            raise TranslationError(
                "appears more than once", path=f"{self.path}/{name}[2]", expected="at most one"
            )
        return Node(found[0], f"{self.path}/{name}") if found else None

    def must(self, name: str) -> Node:
        """The single, required ``name`` child."""
        node = self.child(name)
        if node is None:
            raise TranslationError(
                "is missing", path=f"{self.path}/{name}", expected=f"the <{name}> element"
            )
        return node

    def maybe_text(self) -> str | None:
        """The element's text, stripped, or ``None`` when empty."""
        if len(self.element):
            raise self.error("must contain text only", "text without child elements")
        return (self.element.text or "").strip() or None

    def text(self) -> str:
        """The element's text, stripped; an error when empty."""
        text = self.maybe_text()
        if text is None:
            raise self.error("is empty", "text")
        return text

    def value(self, name: str) -> str:
        """The text of the single, required ``name`` child."""
        return self.must(name).text()

    def maybe_value(self, name: str) -> str | None:
        """The text of the single ``name`` child, or ``None`` when absent or empty."""
        node = self.child(name)
        return None if node is None else node.maybe_text()

    def attr(self, name: str) -> str | None:
        """An attribute's value, stripped, or ``None`` when absent or empty."""
        return (self.element.get(name) or "").strip() or None

    def need(self, name: str) -> str:
        """A required attribute's value, stripped."""
        value = self.attr(name)
        if value is None:
            raise self.error("is missing or empty", "a value", name)
        return value

    def enum(self, raw: str, table: Mapping[str, T], attr: str | None = None) -> T:
        """``raw`` looked up in a vocabulary, or an error listing what is allowed."""
        try:
            return table[raw]
        except KeyError:
            raise self.error(
                "is not a value this format defines here", _one_of(table), attr
            ) from None

    def integer(self, raw: str, *, low: int, high: int, attr: str | None = None) -> int:
        """``raw`` as a whole number between ``low`` and ``high``."""
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            raise self.error("is not a whole number in range", f"{low} to {high}", attr)
        return int(raw)

    def boolean(self, raw: str, attr: str | None = None) -> bool:
        """``raw`` as an xs:boolean."""
        if raw not in _BOOLEANS:
            raise self.error("is not a boolean", "true or false", attr)
        return _BOOLEANS[raw]

    def instant(self, raw: str, attr: str | None = None) -> datetime:
        """``raw`` as an ISO 8601 date-time with a UTC offset."""
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            value = None
        if value is None or value.tzinfo is None:
            raise self.error(
                "is not a date-time with a UTC offset",
                "ISO 8601 with an offset: YYYY-MM-DDThh:mm:ss+hh:mm or YYYY-MM-DDThh:mm:ssZ",
                attr,
            )
        return value

    def day(self, raw: str, attr: str | None = None) -> date:
        """``raw`` as an ISO 8601 calendar date."""
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise self.error("is not a date", "ISO 8601: YYYY-MM-DD", attr) from None


_BOOLEANS: Final[Mapping[str, bool]] = {"true": True, "1": True, "false": False, "0": False}


def _one_of(values: Collection[Any]) -> str:
    return "one of " + ", ".join(str(v) for v in values) if values else "none"
