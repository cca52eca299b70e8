"""Signed audit checkpoints, periodically, and verifying the whole log against them.

The hash chain shows any edit, insertion or deletion inside the log, but not a cut-off tail or
a chain recomputed from scratch by someone who can write the database. A checkpoint is the
head (seq, hash) signed with Ed25519 (``EH_AUDIT_SIGNING_KEY``); whoever holds the public key
(``escalation-hub audit public-key``) can check that the log still holds each signed head.

The scheduler role signs one every ``CHECKPOINT_EVERY_SECONDS`` or every
``CHECKPOINT_EVERY_ENTRIES`` entries, whichever comes first, and only when the log has grown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.bootstrap import Hub
from gateway.store import audit
from gateway.store.db import transaction
from gateway.store.models import AuditCheckpoint, AuditEntry, AuditHead
from security import audit as chain

__all__ = [
    "CHECKPOINT_EVERY_ENTRIES",
    "CHECKPOINT_EVERY_SECONDS",
    "CHECKPOINT_POLL_SECONDS",
    "Checkpointer",
    "Report",
    "due",
    "sign_now",
    "verify_log",
]

CHECKPOINT_EVERY_SECONDS: Final = 300.0  # at most five minutes of entries covered by the chain only
CHECKPOINT_EVERY_ENTRIES: Final = 1000  # or a thousand entries, whichever comes first
CHECKPOINT_POLL_SECONDS: Final = 15.0  # how often the scheduler role looks at the head
_PAGE: Final = 1000

logger = logging.getLogger(__name__)


@dataclass
class Report:
    """What ``verify_log`` found: sizes, the first broken link and why, checkpoint results."""

    entries: int = 0
    last_seq: int = 0
    head: tuple[int, str] | None = None
    broken_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    checkpoints: int = 0
    latest_checkpoint: tuple[int, datetime] | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and not self.problems


def sign_now(hub: Hub, *, signing_key: bytes) -> AuditCheckpoint:
    """Sign the current head in a transaction of its own (the one at that seq if it exists)."""
    with transaction(hub.sessions) as session:
        return audit.checkpoint(session, signing_key=signing_key, at=hub.clock())


def due(
    session: Session,
    *,
    now: datetime,
    every_seconds: float = CHECKPOINT_EVERY_SECONDS,
    every_entries: int = CHECKPOINT_EVERY_ENTRIES,
) -> bool:
    """True when the log grew past the latest checkpoint by enough entries or time."""
    head = session.scalar(select(AuditHead.seq).where(AuditHead.id == audit.HEAD_ID)) or 0
    latest = session.execute(
        select(AuditCheckpoint.seq, AuditCheckpoint.at).order_by(AuditCheckpoint.seq.desc())
    ).first()
    if latest is None:
        return head > 0
    grown = head - int(latest.seq)
    old = now - latest.at >= timedelta(seconds=every_seconds)
    return grown > 0 and (grown >= every_entries or old)


def verify_log(session: Session, *, public_keys: Iterable[bytes]) -> Report:
    """Check the chain (first broken seq) and every signed checkpoint against the log."""
    keys = list(public_keys)
    report = Report()
    count, last = session.execute(select(func.count(), func.max(AuditEntry.seq))).one()
    report.entries, report.last_seq = int(count), int(last or 0)
    head = session.execute(select(AuditHead.seq, AuditHead.hash)).first()
    report.head = None if head is None else (int(head.seq), str(head.hash))
    report.broken_seq = audit.verify(session)
    if report.broken_seq is not None:
        report.problems.append(_chain_problem(report))
    matched = 0
    for signed in _checkpoints(session):
        problem, broken = _checkpoint_problem(session, signed, keys, matched, report.last_seq)
        if problem is None:
            matched = signed.seq
            report.checkpoints += 1
            report.latest_checkpoint = (signed.seq, signed.at)
            continue
        report.problems.append(problem)
        if report.broken_seq is None:
            report.broken_seq = broken
    return report


class Checkpointer:
    """The scheduler role's thread: signs a checkpoint whenever one is ``due``."""

    def __init__(
        self,
        hub: Hub,
        *,
        signing_key: bytes,
        every_seconds: float = CHECKPOINT_EVERY_SECONDS,
        every_entries: int = CHECKPOINT_EVERY_ENTRIES,
        poll: float = CHECKPOINT_POLL_SECONDS,
    ) -> None:
        chain.public_key_from_private(signing_key)  # refuses a malformed key at start-up
        self._hub, self._key = hub, signing_key
        self._every = (every_seconds, every_entries)
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="eh-checkpoint", daemon=True)
            self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop after the check in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Check every ``poll`` seconds until stopped; store errors are logged, not fatal."""
        while not self._stop.wait(self._poll):
            try:
                self.tick()
            except SQLAlchemyError as exc:
                logger.warning("checkpoint.store_unavailable", extra={"error": type(exc).__name__})

    def tick(self) -> AuditCheckpoint | None:
        """Sign a checkpoint now if one is due; return it (None if not due)."""
        every_seconds, every_entries = self._every
        now = self._hub.clock()
        with transaction(self._hub.sessions) as session:
            if not due(session, now=now, every_seconds=every_seconds, every_entries=every_entries):
                return None
            return audit.checkpoint(session, signing_key=self._key, at=now)


def _chain_problem(report: Report) -> str:
    seq = report.broken_seq
    if report.head is not None and seq == report.last_seq + 1 and report.head[0] > report.last_seq:
        return (
            f"the log ends at seq {report.last_seq} but its head says {report.head[0]}: "
            f"the tail from seq {seq} was cut off"
        )
    return (
        f"seq {seq} does not follow from the entry before it: it was altered, removed or "
        "inserted (or the head row was)"
    )


def _checkpoint_problem(
    session: Session, signed: AuditCheckpoint, keys: list[bytes], matched: int, last: int
) -> tuple[str | None, int | None]:
    """Why a checkpoint fails, and the first link it shows broken; (None, None) if it holds."""
    signature = (signed.seq, signed.head_hash, signed.signature)
    if not any(chain.verify_checkpoint(key, *signature) for key in keys):
        return (
            f"the checkpoint at seq {signed.seq} is not signed by the audit key (forged, or "
            "signed with another key: pass its public key with --public-key)"
        ), None
    if signed.seq == 0:
        return None, None
    stored = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == signed.seq))
    if stored is None:
        return (
            f"seq {signed.seq} was signed at {signed.at:%Y-%m-%d %H:%M:%S%z} but is no longer "
            f"in the log (it ends at seq {last}): the tail was cut off"
        ), min(last + 1, signed.seq)
    if stored != signed.head_hash:
        return (
            f"seq {signed.seq} differs from its signed checkpoint: the log was rewritten "
            f"between seq {matched + 1} and {signed.seq}"
        ), matched + 1
    return None, None


def _checkpoints(session: Session) -> Iterator[AuditCheckpoint]:
    after = -1
    while True:
        page = session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.seq > after)
            .order_by(AuditCheckpoint.seq)
            .limit(_PAGE)
        ).all()
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].seq
