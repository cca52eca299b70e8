"""The tamper-evident audit log: one hash chain in ``audit_log``, its head in ``audit_head``.

Every appender locks the single head row (``SELECT ... FOR UPDATE``; on SQLite the
``BEGIN IMMEDIATE`` write lock already serialises), so concurrent processes keep one linear
chain with contiguous sequence numbers. The lock is held until the caller's transaction
ends: append last in a unit of work. Details hold ids, rule names and clauses only.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from gateway.store.db import insert_or_nothing
from gateway.store.models import AuditCheckpoint, AuditEntry, AuditHead
from security import audit as chain
from security.errors import KeyMaterialError

__all__ = [
    "HEAD_ID",
    "MAX_DETAIL_TEXT",
    "append",
    "checkpoint",
    "signing_key_from_text",
    "verify",
    "verify_checkpoint",
]

HEAD_ID: Final = 1
MAX_DETAIL_TEXT: Final = 256  # longer strings are narratives, not ids or clauses
_BATCH: Final = 1000

logger = logging.getLogger(__name__)


def append(
    session: Session | Connection,
    *,
    at: datetime,
    action: str,
    actor: str,
    escalation_id: str | None,
    detail: Mapping[str, Any],
) -> AuditEntry:
    """Append one entry after the chain head, in the caller's transaction (an ORM session or
    a Core connection)."""
    _require_aware(at, "at")
    _require_text(action, "action", 64)
    _require_text(actor, "actor", 128)
    clean = _clean_detail(detail)
    conn = _connection(session)
    head_seq, head_hash = _lock_head(conn)
    seq = head_seq + 1
    digest = chain.chain_hash(head_hash, _fields(seq, at, action, actor, escalation_id, clean))
    values = {
        "seq": seq,
        "at": at,
        "action": action,
        "actor": actor,
        "escalation_id": escalation_id,
        "detail": clean,
        "prev_hash": head_hash,
        "hash": digest,
    }
    # Core statements built once: this runs for every decision, delivery and read, and the
    # ORM's unit of work (or building a statement) cost more than the rest of an append.
    conn.execute(_INSERT_ENTRY, values)
    conn.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": digest})
    return AuditEntry(**values)  # a copy for the caller; the row is written


def verify(session: Session, *, batch_size: int = _BATCH) -> int | None:
    """Return the seq of the first broken link (None when intact), reading in batches."""
    found = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID))
    head_row = found.one_or_none()
    prev_seq, prev_hash, hash_at_head = 0, chain.GENESIS, None
    for row in _stream(session, batch_size):
        if row.seq != prev_seq + 1:
            return prev_seq + 1  # a missing entry
        fields = _fields(row.seq, row.at, row.action, row.actor, row.escalation_id, row.detail)
        if row.prev_hash != prev_hash or chain.chain_hash(prev_hash, fields) != row.hash:
            return int(row.seq)
        prev_seq, prev_hash = row.seq, row.hash
        if head_row is not None and row.seq == head_row.seq:
            hash_at_head = row.hash
    head = None if head_row is None else (int(head_row.seq), str(head_row.hash))
    return _check_head(head, prev_seq, hash_at_head)


def checkpoint(session: Session, *, signing_key: bytes, at: datetime) -> AuditCheckpoint:
    """Sign the current head (Ed25519); a checkpoint already at that seq is returned."""
    _require_aware(at, "at")
    head_seq, head_hash = _lock_head(session)
    existing = session.get(AuditCheckpoint, head_seq)
    if existing is not None:
        return existing
    signature = chain.sign_checkpoint(signing_key, head_seq, head_hash)
    signed = AuditCheckpoint(seq=head_seq, head_hash=head_hash, signature=signature, at=at)
    session.add(signed)
    session.flush()
    logger.info("audit checkpoint signed", extra={"seq": head_seq})
    return signed


def verify_checkpoint(session: Session, signed: AuditCheckpoint, *, public_key: bytes) -> bool:
    """True if the signature holds and the log still has that hash at that seq."""
    if not chain.verify_checkpoint(public_key, signed.seq, signed.head_hash, signed.signature):
        return False
    if signed.seq == 0:
        return signed.head_hash == chain.GENESIS
    stored = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == signed.seq))
    return stored == signed.head_hash


def signing_key_from_text(value: str) -> bytes:
    """Decode ``EH_AUDIT_SIGNING_KEY`` (base64 of the 32-byte Ed25519 private key)."""
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyMaterialError(
            "EH_AUDIT_SIGNING_KEY must be the base64 of a 32-byte Ed25519 private key"
        )
    return key


def _check_head(head: tuple[int, str] | None, last_seq: int, at_head: str | None) -> int | None:
    """Compare the head row with the verified chain: a cut-off tail or an altered head."""
    if head is None:
        return None  # never appended to; the next append recreates it from the last entry
    head_seq, head_hash = head
    if last_seq < head_seq:
        return last_seq + 1  # the tail was cut off
    expected = chain.GENESIS if head_seq == 0 else at_head
    return None if expected == head_hash else max(head_seq, 1)


_INSERT_ENTRY: Final = insert(AuditEntry)
_MOVE_HEAD: Final = (
    update(AuditHead)
    .where(AuditHead.id == HEAD_ID)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
_LOCK_HEAD: Final = (
    select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == HEAD_ID).with_for_update()
)


def _connection(session: Session | Connection) -> Connection:
    """The transaction's connection, the session's pending rows flushed first (as the ORM's
    autoflush would): the head's lock is then held only for the append itself. Core on the
    connection skips the ORM's statement machinery, which cost more than the append."""
    if isinstance(session, Connection):
        return session
    session.flush()
    return session.connection()


def _lock_head(session: Session | Connection) -> tuple[int, str]:
    """The head's seq and hash, read from the database under a row lock (never a copy)."""
    head = session.execute(_LOCK_HEAD).one_or_none()
    if head is None:
        _create_head(session)
        head = session.execute(_LOCK_HEAD).one()
    return int(head.seq), str(head.hash)


def _create_head(session: Session | Connection) -> None:
    """Insert the head row unless a concurrent appender just did (ON CONFLICT DO NOTHING)."""
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).one_or_none()
    seq, digest = (last.seq, last.hash) if last is not None else (0, chain.GENESIS)
    values = {"id": HEAD_ID, "seq": seq, "hash": digest}
    bind = session if isinstance(session, Connection) else session.get_bind()
    statement = insert_or_nothing(AuditHead, bind.dialect.name, key=("id",))
    session.execute(statement.values(values))


def _stream(session: Session, batch_size: int) -> Iterator[Row[Any]]:
    """Yield entries in seq order, one keyset-paged batch at a time."""
    columns = (
        AuditEntry.seq,
        AuditEntry.at,
        AuditEntry.action,
        AuditEntry.actor,
        AuditEntry.escalation_id,
        AuditEntry.detail,
        AuditEntry.prev_hash,
        AuditEntry.hash,
    )
    after = 0
    while True:
        query = select(*columns).where(AuditEntry.seq > after).order_by(AuditEntry.seq)
        rows: Sequence[Row[Any]] = session.execute(query.limit(batch_size)).all()
        yield from rows
        if len(rows) < batch_size:
            return
        after = rows[-1].seq


def _fields(
    seq: int, at: datetime, action: str, actor: str, escalation_id: str | None, detail: Any
) -> dict[str, Any]:
    return {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(),
        "action": action,
        "actor": actor,
        "escalation_id": escalation_id,
        "detail": detail,
    }


def _clean_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """Return detail as it will read back from the JSON column, or explain what is wrong."""
    try:
        clean = json.loads(chain.canonical_json(detail))
    except (TypeError, ValueError):
        raise ValueError(
            "audit detail must be a JSON object of ids, rule names and clauses "
            "(str, int, bool, None, lists and objects of those)"
        ) from None
    _check_short(clean, "detail")
    return dict(clean)


def _check_short(value: Any, path: str) -> None:
    """Refuse long strings; the message names no key or value (either could be content)."""
    if isinstance(value, str) and len(value) > MAX_DETAIL_TEXT:
        raise ValueError(
            f"a string in the audit {path} is longer than {MAX_DETAIL_TEXT} characters: the "
            "audit log holds ids, rule names and clauses, never narratives or personal data"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_short(key, path)
            _check_short(item, path)
    elif isinstance(value, list):
        for item in value:
            _check_short(item, path)


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"audit {name} must be a timezone-aware datetime (UTC preferred)")


def _require_text(value: str, name: str, limit: int) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"audit {name} must be non-empty text of at most {limit} characters")
