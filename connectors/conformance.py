"""The conformance kit: one call gives the pytest suite every connector must pass.

In a test module of your own::

    from connectors.conformance import Samples, make_conformance_tests
    from my_package.connector import MyConnector

    TestMyConnector = make_conformance_tests(
        MyConnector, Samples.from_directory(Path(__file__).parent / "samples")
    )

A samples directory holds valid native documents at its top level, invalid ones under
``invalid/`` (or named ``invalid-*``), and optionally ``config.json``: the connector config the
samples need (e.g. the ``organisations`` their partner codes map through). The suite checks:
the meta and the config model (``SecretStr`` for every ``*secret*``, ``*password*`` and
``*token*`` field); every valid sample translates to valid common events, the same ones twice
(ids derive from the native ids, never from chance or the clock); a stage update built from
them renders to a native document that the connector reads back under the sender's own case
reference (or, without ``read_outbound``, that is at least well-formed); an update without the
child carries none of the child's identifiers; every invalid sample fails with a native path
and what is expected, and no error repeats a value of the sample.

Only ``make_conformance_tests`` needs pytest; ``Sample``, ``Samples`` and ``content_type_for``
work without it (``escalation-hub connectors check`` uses them in a production install).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, get_args

from pydantic import SecretStr

from connectors import conformance_checks as checks
from connectors.base import Connector, InboundContext

__all__ = ["Sample", "Samples", "content_type_for", "make_conformance_tests"]

_SECRET_NAMES: Final = re.compile(r"secret|password|token", re.IGNORECASE)
_MEDIA_TYPE: Final = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


@dataclass(frozen=True)
class Sample:
    """One native document; ``content_type`` None means: the read type matching the suffix."""

    name: str
    body: bytes
    content_type: str | None = None
    suffix: str = ""

    @classmethod
    def from_file(cls, path: Path, *, content_type: str | None = None) -> Sample:
        return cls(path.name, path.read_bytes(), content_type, path.suffix.lstrip(".").lower())


@dataclass(frozen=True)
class Samples:
    """A connector's sample documents, the agency sending them and the config they need.

    ``vocabulary``: codes of the native format that an error may name (e.g. in "expected"),
    so the no-echo check does not mistake them for submitted values.
    """

    valid: tuple[Sample, ...]
    invalid: tuple[Sample, ...]
    agency_id: str = "sample-agency"
    config: Mapping[str, Any] = field(default_factory=dict)
    vocabulary: frozenset[str] = frozenset()

    @classmethod
    def from_directory(
        cls,
        path: Path,
        *,
        agency_id: str = "sample-agency",
        vocabulary: frozenset[str] = frozenset(),
    ) -> Samples:
        """Valid samples at the top, invalid ones in ``invalid/`` or named ``invalid-*``."""
        if not path.is_dir():
            raise FileNotFoundError(f"no samples directory at {path}; create it with samples")
        top = [p for p in sorted(path.iterdir()) if _is_sample(p)]
        nested = sorted(p for p in (path / "invalid").glob("*") if _is_sample(p))
        invalid = [p for p in top if p.name.startswith(("invalid-", "invalid_"))] + nested
        config_file = path / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        return cls(
            valid=tuple(Sample.from_file(p) for p in top if p not in invalid),
            invalid=tuple(Sample.from_file(p) for p in invalid),
            agency_id=agency_id,
            config=config,
            vocabulary=vocabulary,
        )


def _is_sample(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name != "config.json"


def content_type_for(sample: Sample, reads: tuple[str, ...]) -> str:
    """The sample's media type: its own, else the read type matching its file suffix."""
    if sample.content_type:
        return sample.content_type
    suffix = sample.suffix
    matching = [t for t in reads if t.endswith((f"/{suffix}", f"+{suffix}"))]
    return (matching or list(reads))[0]


def make_conformance_tests(
    connector_factory: Callable[[], Connector], samples: Samples, *, name: str | None = None
) -> type:
    """A pytest test class checking ``connector_factory()`` against ``samples``.

    Bind it to a module-level name that starts with ``Test`` so pytest collects it.
    """
    import pytest  # a test dependency: ``connectors check`` uses this module without it

    kit = _Kit(connector_factory, samples)
    valid = pytest.mark.parametrize("sample", samples.valid, ids=[s.name for s in samples.valid])
    invalid = pytest.mark.parametrize(
        "sample", samples.invalid, ids=[s.name for s in samples.invalid]
    )

    class ConformanceSuite:
        def test_meta_is_valid(self) -> None:
            kit.meta_is_valid()

        def test_secret_config_fields_are_secret_str(self) -> None:
            kit.secrets_are_secret_str()

        def test_the_samples_include_valid_and_invalid_documents(self) -> None:
            assert samples.valid, "ship at least one valid sample document"
            assert samples.invalid, "ship at least one invalid sample (under invalid/)"

        @valid
        def test_a_valid_sample_translates_to_common_events(self, sample: Sample) -> None:
            kit.translates(sample)

        @valid
        def test_translating_a_sample_twice_gives_the_same_events(self, sample: Sample) -> None:
            kit.idempotent(sample)

        @valid
        def test_a_stage_update_renders_and_reads_back_under_the_own_reference(
            self, sample: Sample
        ) -> None:
            kit.round_trip(sample)

        @valid
        def test_an_update_without_the_child_carries_none_of_its_identifiers(
            self, sample: Sample
        ) -> None:
            kit.no_child_unless_given(sample)

        def test_a_notification_renders_and_reads_back(self) -> None:
            kit.notification_round_trip()

        @invalid
        def test_an_invalid_sample_fails_naming_its_native_path_and_what_is_expected(
            self, sample: Sample
        ) -> None:
            kit.fails_clearly(sample)

        @invalid
        def test_errors_never_repeat_a_value_of_the_sample(self, sample: Sample) -> None:
            kit.never_echoes(sample)

    kind = _class_name(connector_factory)
    ConformanceSuite.__name__ = ConformanceSuite.__qualname__ = name or f"TestConformance{kind}"
    return ConformanceSuite


def _class_name(factory: Callable[[], Connector]) -> str:
    return re.sub(r"\W", "", getattr(factory, "__name__", "Connector")) or "Connector"


class _Kit:
    """The checks themselves; each raises AssertionError saying what is wrong."""

    def __init__(self, factory: Callable[[], Connector], samples: Samples) -> None:
        self.factory = factory
        self.samples = samples

    def context(self, received_at: datetime | None = None) -> InboundContext:
        connector = self.factory()
        config = connector.config_model.model_validate(dict(self.samples.config))
        return InboundContext(
            agency_id=self.samples.agency_id,
            connector_id="con_conformance",
            received_at=received_at or datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
            config=config,
        )

    def translate(self, sample: Sample, *, received_at: datetime | None = None) -> list[Any]:
        connector = self.factory()
        content_type = content_type_for(sample, connector.meta.reads)
        return connector.translate_inbound(
            sample.body, content_type, context=self.context(received_at)
        )

    def meta_is_valid(self) -> None:
        meta = self.factory().meta
        checks.meta_valid(meta, _MEDIA_TYPE)

    def secrets_are_secret_str(self) -> None:
        model = self.factory().config_model
        for field_name, info in model.model_fields.items():
            if _SECRET_NAMES.search(field_name):
                assert SecretStr in set(_flatten(info.annotation)), (
                    f"config field '{field_name}' looks secret: declare it as SecretStr"
                )

    def translates(self, sample: Sample) -> None:
        events = self.translate(sample)
        checks.events_valid(events, agency_id=self.samples.agency_id)

    def idempotent(self, sample: Sample) -> None:
        first = self.translate(sample, received_at=datetime(2026, 1, 1, tzinfo=UTC))
        again = self.translate(sample, received_at=datetime(2027, 6, 30, 23, 59, tzinfo=UTC))
        dumped = [e.model_dump(mode="json") for e in first]
        assert dumped == [e.model_dump(mode="json") for e in again], (
            "translating the same document twice gave different events: derive ids and "
            "references from the native document, never from the clock or chance"
        )

    def round_trip(self, sample: Sample) -> None:
        connector = self.factory()
        for index, event in enumerate(self.translate(sample)):
            update = checks.update_for(event, sequence=index + 1, agency_id=self.samples.agency_id)
            checks.reads_back(connector, update)

    def no_child_unless_given(self, sample: Sample) -> None:
        connector = self.factory()
        for index, event in enumerate(self.translate(sample)):
            update = checks.update_for(event, sequence=index + 1, agency_id=self.samples.agency_id)
            checks.no_child_in(connector, update.model_copy(update={"child": None}), update.child)

    def notification_round_trip(self) -> None:
        checks.reads_back(self.factory(), checks.NOTIFICATION)

    def fails_clearly(self, sample: Sample) -> None:
        error = checks.translation_error(self.translate, sample)
        for problem in error.problems:
            assert problem.field.strip(), "every problem must name the native path at fault"
            assert problem.problem.strip(), f"{problem.field}: say what is wrong"
            assert (problem.expected or "").strip(), f"{problem.field}: say what is expected"

    def never_echoes(self, sample: Sample) -> None:
        error = checks.translation_error(self.translate, sample)
        values = checks.sample_values(sample.body) - self.samples.vocabulary
        for problem in error.problems:
            said = " ".join(filter(None, (problem.problem, problem.expected, error.title)))
            echoed = sorted(v for v in values if v in said)
            assert not echoed, f"{problem.field}: the error repeats the document's {echoed}"


def _flatten(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in get_args(annotation):
        yield from _flatten(arg)
