"""SQLAlchemy 2 tables. Sensitive content lives only in ``*_sealed`` columns (key ring)."""

from __future__ import annotations

import threading
import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Agency",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditHead",
    "Base",
    "Connector",
    "DeadlineRow",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryLane",
    "EscalationRow",
    "IdempotentResponse",
    "InboundEvent",
    "NotificationRow",
    "OutboxMessage",
    "Party",
    "ProcessedMessage",
]

ID = String(64)
PK = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrement needs INTEGER


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python, stored as UTC (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
        }
    )
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as class data)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        bytes: LargeBinary(),
    }


class Agency(Base):
    """An agency (or a partnership's business office) and its hashed API credential."""

    __tablename__ = "agencies"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    partnerships: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"ids": [...]}
    notify_email: Mapped[str | None] = mapped_column(String(320))
    credential_id: Mapped[str] = mapped_column(String(64), unique=True)
    credential_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Connector(Base):
    """An agency's connector: its kind, callback, encryption key, secrets and config."""

    __tablename__ = "connectors"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str] = mapped_column(String(2000))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    secrets_sealed: Mapped[bytes]  # JSON list of signing secrets, newest first
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]
    # The connector kind's config: fields in clear here, SecretStr fields sealed apart.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    config_secrets_sealed: Mapped[bytes | None]


class IdempotentResponse(Base):
    """The first answer to a (connector, webhook-id); a repeat gets it again."""

    __tablename__ = "idempotent_responses"
    connector_id: Mapped[str] = mapped_column(ID, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    status_code: Mapped[int]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class EscalationRow(Base):
    """One escalation: clear columns for routing and scoping; the state itself sealed."""

    __tablename__ = "escalations"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    partnership: Mapped[str] = mapped_column(String(64), index=True)
    procedure_id: Mapped[str] = mapped_column(String(64))
    procedure_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), default="pending")
    stage: Mapped[int] = mapped_column(default=0)
    tier: Mapped[int] = mapped_column(default=0)
    child_pseudonym: Mapped[str | None] = mapped_column(String(128), index=True)
    state_sealed: Mapped[bytes | None]
    next_seq: Mapped[int] = mapped_column(default=1)  # next sequence number to give at ingest
    applied_seq: Mapped[int] = mapped_column(default=0)  # last sequence number decided
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Party(Base):
    """Who may see and act on an escalation, and each agency's own case reference."""

    __tablename__ = "parties"
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    case_reference: Mapped[str | None] = mapped_column(String(128))
    __table_args__ = (Index("ix_parties_reference", "agency_id", "case_reference"),)


class InboundEvent(Base):
    """Every accepted event, sealed, numbered per escalation in the order accepted."""

    __tablename__ = "inbound_events"
    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(500))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"))
    seq: Mapped[int]
    connector_id: Mapped[str | None] = mapped_column(ID)
    agency_id: Mapped[str | None] = mapped_column(ID)
    body_sealed: Mapped[bytes]
    received_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(100))  # the rule that fired
    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_inbound_source_id"),
        UniqueConstraint("escalation_id", "seq", name="uq_inbound_escalation_seq"),
        # Accepted but not yet decided: the recovery sweep and the scheduler read only these.
        Index(
            "ix_inbound_undecided",
            "escalation_id",
            postgresql_where=text("decided_at IS NULL"),
            sqlite_where=text("decided_at IS NULL"),
        ),
    )


class OutboxMessage(Base):
    """A message to publish; written in the same transaction as the change it announces."""

    __tablename__ = "outbox"
    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    topic: Mapped[str] = mapped_column(String(32))  # decide | deliver | notify
    routing_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids only: never sensitive content
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    __table_args__ = (Index("ix_outbox_unpublished", "published_at", "pk"),)


class ProcessedMessage(Base):
    """The inbox: message ids a consumer has already handled."""

    __tablename__ = "processed_messages"
    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime]


class DeadlineRow(Base):
    """The scheduler's index of pending deadlines (mirrors the sealed state)."""

    __tablename__ = "deadlines"
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"), primary_key=True)
    deadline_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    due: Mapped[datetime]
    notice_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))
    calendar_version: Mapped[str] = mapped_column(String(128))
    __table_args__ = (
        Index("ix_deadlines_due", "due"),
        Index("ix_deadlines_notice", "notice_at"),
    )


DELIVERY_SEQUENCE = Sequence("deliveries_seq", metadata=Base.metadata)  # PostgreSQL only
_SQLITE_ISSUED: weakref.WeakKeyDictionary[DefaultExecutionContext, int] = (
    weakref.WeakKeyDictionary()
)
_SQLITE_ISSUED_LOCK = threading.Lock()


def next_delivery_seq(context: DefaultExecutionContext) -> int:
    """A new delivery's number: PostgreSQL's sequence; on SQLite max + 1 under the write lock.

    Every SQLite write transaction begins IMMEDIATE (``gateway.store.db``), so no other writer
    can number a row between the max and the insert; rows of one multi-row INSERT count on.
    """
    connection = context.connection
    if connection.dialect.name == "postgresql":
        return int(connection.scalar(select(DELIVERY_SEQUENCE.next_value())))
    with _SQLITE_ISSUED_LOCK:
        issued = _SQLITE_ISSUED.get(context)
    if issued is None:
        issued = int(connection.scalar(select(func.coalesce(func.max(Delivery.seq), 0))) or 0)
    with _SQLITE_ISSUED_LOCK:
        _SQLITE_ISSUED[context] = issued + 1
    return issued + 1


class Delivery(Base):
    """One stage update or notification to one connector (or business-office channel).

    ``seq`` numbers deliveries in the order they were stored; a lane sends in that order.
    """

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the stable webhook id
    escalation_id: Mapped[str] = mapped_column(ID, index=True)
    connector_id: Mapped[str | None] = mapped_column(ID, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    target: Mapped[str] = mapped_column(String(2000))  # URL or address
    document_sealed: Mapped[bytes]  # the effect JSON (StageUpdate or Notification)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    seq: Mapped[int] = mapped_column(BigInteger, default=next_delivery_seq)
    __table_args__ = (
        Index("ix_deliveries_seq", "seq", unique=True),
        # A lane's pending rows in order: the dispatchers read only these.
        Index(
            "ix_deliveries_pending",
            "connector_id",
            "seq",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )


class DeliveryLane(Base):
    """Who sends a target's deliveries now: one delivery process, while its lease lasts.

    ``target`` is the lane key (``connector:{id}``, or ``email:{address}``); ``holder`` a
    dispatcher's id; both columns are empty while nobody works the lane. ``wanted_by`` is
    another dispatcher asking for the lane (it holds fewer lanes), until ``wanted_until``: the
    holder hands the lease over between two deliveries (``gateway.services.lanes``).
    """

    __tablename__ = "delivery_lanes"
    target: Mapped[str] = mapped_column(String(2100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    wanted_by: Mapped[str | None] = mapped_column(String(200))
    wanted_until: Mapped[datetime | None]


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    pk: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]


class NotificationRow(Base):
    """A notification to a business office or named role, for the partnership's view."""

    __tablename__ = "notifications"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    escalation_id: Mapped[str] = mapped_column(ID, index=True)
    partnership: Mapped[str] = mapped_column(String(64), index=True)
    recipient: Mapped[str] = mapped_column(String(64))
    stage: Mapped[int]
    clause: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    immediate: Mapped[bool]
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Hash-chained record of every decision, delivery and read."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    escalation_id: Mapped[str | None] = mapped_column(ID, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)  # ids, rules, clauses: never content
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the chain's head, locked by every appender so the chain stays linear."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(PK)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement of the chain head at a sequence number."""

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(PK, primary_key=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]


# The trust layer's tables live beside these, on the same Base: import them so that
# ``Base.metadata`` always lists every table the migrations create.
from gateway.store import models_security  # noqa: E402, F401
