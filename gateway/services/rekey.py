"""Re-encryption at rest: re-seal rows still under an old data key, in small batches.

Every sealed column is listed in ``SEALED_COLUMNS`` with the context it is sealed under. Key
ids are read from each blob's header by the database (``key_id_sql``): counting never
decrypts. A batch selects up to N rows under a non-active key (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so concurrent re-sealers and writers never wait on each other; SQLite's write
lock serialises), unseals each with the ring, seals it again under the active key and
writes it back only if it is unchanged (compare and set), all in one short transaction.
Plaintext never changes, so a reader sees the old or the new blob and can unseal either.
Idempotent: a row under the active key is never touched. A row that cannot be unsealed (its
key is not in the ring, or it was altered) is counted and left as it is.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Integer, LargeBinary, Text, case, cast, func, literal, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from gateway.bootstrap import Hub
from gateway.store.audit import append
from gateway.store.db import transaction
from gateway.store.models import Connector, Delivery, EscalationRow, InboundEvent
from security.errors import SecurityError

__all__ = [
    "REKEY_BATCH",
    "REKEY_IDLE",
    "REKEY_PAUSE",
    "SEALED_COLUMNS",
    "UNREADABLE_HEADER",
    "Batch",
    "Rekeyer",
    "SealedColumn",
    "batches",
    "count_by_key",
    "key_id_sql",
    "reencrypt",
    "reseal_batch",
]

REKEY_BATCH: Final = 50  # rows per transaction in the background
REKEY_PAUSE: Final = 0.5  # seconds between background batches (keeps it low priority)
REKEY_IDLE: Final = 900.0  # seconds between background passes once nothing is left
UNREADABLE_HEADER: Final = "(not a key ring blob)"

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # as security.keyring accepts them

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SealedColumn:
    """One sealed column: its table's key, the blob, and how its sealing context is built."""

    name: str
    key: InstrumentedAttribute[Any]
    blob: InstrumentedAttribute[Any]
    context_columns: tuple[InstrumentedAttribute[Any], ...]
    context: Callable[[Any], str]


SEALED_COLUMNS: Final = (
    SealedColumn(
        "escalations.state_sealed",
        EscalationRow.id,
        EscalationRow.state_sealed,
        (),
        lambda row: f"escalation:{row.key}",
    ),
    SealedColumn(
        "inbound_events.body_sealed",
        InboundEvent.pk,
        InboundEvent.body_sealed,
        (InboundEvent.source, InboundEvent.event_id),
        lambda row: f"inbound:{row.source}#{row.event_id}",
    ),
    SealedColumn(
        "connectors.secrets_sealed",
        Connector.id,
        Connector.secrets_sealed,
        (),
        lambda row: f"connector:{row.key}",
    ),
    SealedColumn(
        "connectors.config_secrets_sealed",
        Connector.id,
        Connector.config_secrets_sealed,
        (),
        lambda row: f"connector-config:{row.key}",
    ),
    SealedColumn(
        "deliveries.document_sealed",
        Delivery.id,
        Delivery.document_sealed,
        (),
        lambda row: f"delivery:{row.key}",
    ),
)


@dataclass(frozen=True)
class Batch:
    """What one batch did to one column; ``last`` is where the next batch starts."""

    column: str
    seen: int
    resealed: int
    unreadable: int
    last: Any


def key_id_sql(blob: InstrumentedAttribute[Any], dialect: str) -> ColumnElement[Any]:
    """SQL for the key id bytes in a blob's header (version, length, id), never the rest."""
    if dialect == "postgresql":
        size = case((func.length(blob) >= 2, func.get_byte(blob, 1)), else_=0)
        return func.substr(blob, 3, size)
    byte = func.unicode(cast(func.substr(blob, 2, 1), Text))  # SQLite: the byte as a number
    return func.substr(blob, 3, cast(byte, Integer))


def count_by_key(session: Session) -> dict[str, dict[str, int]]:
    """Rows per key id in every sealed column, from the headers (a scan, no decryption)."""
    dialect = session.get_bind().dialect.name
    counts: dict[str, dict[str, int]] = {}
    for column in SEALED_COLUMNS:
        key_id = key_id_sql(column.blob, dialect)
        version = func.substr(column.blob, 1, 1)
        query = (
            select(version, key_id, func.count())
            .where(column.blob.is_not(None))
            .group_by(version, key_id)
        )
        found: dict[str, int] = {}
        for first, raw, count in session.execute(query):
            name = _key_name(first, raw)
            found[name] = found.get(name, 0) + int(count)
        counts[column.name] = found
    return counts


def reseal_batch(hub: Hub, column: SealedColumn, *, after: Any, size: int) -> Batch:
    """Re-seal up to ``size`` rows of ``column`` under old keys, after key ``after``."""
    sealer, active = hub.sealer, hub.sealer.ring.active_key_id
    with transaction(hub.sessions) as session:
        dialect = session.get_bind().dialect.name
        query = (
            select(column.key.label("key"), column.blob.label("blob"), *column.context_columns)
            .where(column.blob.is_not(None))
            .where(key_id_sql(column.blob, dialect) != literal(active.encode(), LargeBinary))
            .order_by(column.key)
            .limit(size)
            .with_for_update(skip_locked=True)
        )
        if after is not None:
            query = query.where(column.key > after)
        rows = session.execute(query).all()
        resealed = unreadable = 0
        for row in rows:
            context = column.context(row)
            try:
                fresh = sealer.seal_bytes(
                    sealer.unseal_bytes(row.blob, context=context), context=context
                )
            except SecurityError as exc:
                unreadable += 1
                logger.warning(
                    "rekey.unreadable",
                    extra={"column": column.name, "key": str(row.key), "error": type(exc).__name__},
                )
                continue
            resealed += _compare_and_set(session, column, row.key, row.blob, fresh)
    last = rows[-1].key if rows else after
    return Batch(column.name, len(rows), resealed, unreadable, last)


def batches(hub: Hub, *, size: int = REKEY_BATCH) -> Iterator[Batch]:
    """Every batch of one pass over every sealed column, each run as it is asked for."""
    if size < 1:
        raise ValueError("the re-encryption batch size must be at least 1")
    for column in SEALED_COLUMNS:
        after: Any = None
        while True:
            batch = reseal_batch(hub, column, after=after, size=size)
            yield batch
            if batch.seen < size:
                break
            after = batch.last


def reencrypt(
    hub: Hub,
    *,
    size: int = REKEY_BATCH,
    actor: str,
    on_batch: Callable[[Batch], None] | None = None,
    pause: Callable[[], bool] | None = None,
) -> tuple[int, int]:
    """One full pass; returns (resealed, unreadable) and audits a pass that re-sealed rows.

    ``pause`` runs between batches; returning True stops the pass early (a stopping thread).
    """
    resealed = unreadable = 0
    for batch in batches(hub, size=size):
        resealed, unreadable = resealed + batch.resealed, unreadable + batch.unreadable
        if on_batch is not None:
            on_batch(batch)
        if pause is not None and batch.seen and pause():
            break
    if resealed:
        _audit(hub, actor=actor, resealed=resealed, unreadable=unreadable)
    return resealed, unreadable


class Rekeyer:
    """The router role's background re-encryption: a batch, a pause, and again, until stopped."""

    def __init__(
        self,
        hub: Hub,
        *,
        size: int = REKEY_BATCH,
        pause: float = REKEY_PAUSE,
        idle: float = REKEY_IDLE,
    ) -> None:
        self._hub, self._size, self._pause, self._idle = hub, size, pause, idle
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    @property
    def needed(self) -> bool:
        """Whether the ring has an old key whose rows may need re-sealing."""
        return len(self._hub.sealer.ring.key_ids) > 1

    def start(self) -> None:
        """Start the thread (once), only when the ring has more than one key."""
        if self._thread is None and self.needed:
            self._thread = threading.Thread(target=self.run, name="eh-rekey", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop after the batch in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Pass after pass until stopped; store errors are logged and retried after a while."""
        logger.info("rekey.started", extra={"active_key": self._hub.sealer.ring.active_key_id})
        while not self._stop.is_set():
            try:
                resealed, unreadable = reencrypt(
                    self._hub,
                    size=self._size,
                    actor="router",
                    pause=lambda: self._stop.wait(self._pause),
                )
            except SQLAlchemyError as exc:
                logger.warning("rekey.store_unavailable", extra={"error": type(exc).__name__})
            else:
                self.passes += 1
                logger.info("rekey.pass", extra={"resealed": resealed, "unreadable": unreadable})
            self._stop.wait(self._idle)
        logger.info("rekey.stopped")


def _compare_and_set(
    session: Session, column: SealedColumn, key: Any, old: bytes, new: bytes
) -> int:
    statement = (
        update(column.key.class_)
        .where(column.key == key, column.blob == old)
        .values({column.blob.key: new})
        .execution_options(synchronize_session=False)
    )
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


def _key_name(first: Any, raw: Any) -> str:
    """The key id named by a header, or UNREADABLE_HEADER for anything else."""
    if first is None or bytes(first) != b"\x01" or raw is None:
        return UNREADABLE_HEADER
    text = bytes(raw).decode("ascii", errors="replace")
    return text if _KEY_ID.fullmatch(text) else UNREADABLE_HEADER


def _audit(hub: Hub, *, actor: str, resealed: int, unreadable: int) -> None:
    with transaction(hub.sessions) as session:
        append(
            session,
            at=hub.clock(),
            action="data_rekeyed",
            actor=actor,
            escalation_id=None,
            detail={
                "active_key": hub.sealer.ring.active_key_id,
                "resealed": resealed,
                "unreadable": unreadable,
            },
        )
    logger.info("rekey.audited", extra={"resealed": resealed, "unreadable": unreadable})
