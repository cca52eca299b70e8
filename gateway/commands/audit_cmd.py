"""``escalation-hub audit verify|checkpoint|public-key``: the tamper-evident audit log.

``verify`` streams the hash chain, checks every signed checkpoint with the public key derived
from ``EH_AUDIT_SIGNING_KEY`` (or given with ``--public-key``), and exits 1 naming the first
broken link. Only the database and the audit key are needed, never the data keys.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.commands.common import EXIT_CONFIG, settings_or_explain
from gateway.devsecrets import resolve_secrets
from gateway.services.checkpoints import Report, verify_log
from gateway.store import audit
from gateway.store.db import make_engine, make_sessionmaker, transaction
from security.audit import public_key_from_private
from security.errors import KeyMaterialError

__all__ = ["register"]

EXIT_BROKEN: Final = 1  # 0: intact; 2: configuration; 3: the database cannot be read
EXIT_UNAVAILABLE: Final = 3


def register(sub: Any) -> None:
    """Add the ``audit`` command and its actions."""
    p = sub.add_parser("audit", help="verify and checkpoint the tamper-evident audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = asub.add_parser("verify", help="check the hash chain and the signed checkpoints")
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="BASE64",
        help="a checkpoint public key to trust (repeatable; default: from EH_AUDIT_SIGNING_KEY)",
    )
    verify.set_defaults(handler=_verify)
    checkpoint = asub.add_parser("checkpoint", help="sign the log's head now")
    checkpoint.set_defaults(handler=_checkpoint)
    public = asub.add_parser("public-key", help="print the checkpoint public key to publish")
    public.set_defaults(handler=_public_key)


def _verify(args: argparse.Namespace) -> int:
    loaded = _load()
    if loaded is None:
        return EXIT_CONFIG
    engine, signing_key = loaded
    try:
        keys = [_decode_public(text) for text in args.public_key] or [
            public_key_from_private(signing_key)
        ]
    except KeyMaterialError as exc:
        return _fail(f"--public-key: {exc}", code=EXIT_CONFIG)
    print("verifying the audit log...", file=sys.stderr, flush=True)
    try:
        with make_sessionmaker(engine)() as session:
            report = verify_log(session, public_keys=keys)
    except SQLAlchemyError as exc:
        return _fail(
            f"cannot read the audit log ({type(exc).__name__}); check EH_DATABASE_URL",
            code=EXIT_UNAVAILABLE,
        )
    finally:
        engine.dispose()
    return _print_report(report)


def _print_report(report: Report) -> int:
    if not report.ok:
        where = (
            f"at seq {report.broken_seq}" if report.broken_seq is not None else "in a checkpoint"
        )
        print(f"audit log BROKEN {where}:")
        for problem in report.problems:
            print(f"  - {problem}")
        return EXIT_BROKEN
    head = "no head yet" if report.head is None else f"head seq {report.head[0]} {report.head[1]}"
    print(f"audit log OK: {report.entries} entries, {head}")
    if report.latest_checkpoint is None:
        print(
            "  no signed checkpoint yet: a cut-off tail cannot be told apart; run "
            "'escalation-hub audit checkpoint' (the scheduler role signs them periodically)"
        )
        return 0
    seq, at = report.latest_checkpoint
    print(
        f"  {report.checkpoints} signed checkpoint(s) hold; the latest at seq {seq} "
        f"({at:%Y-%m-%d %H:%M:%S%z})"
    )
    if report.last_seq > seq:
        print(
            f"  entries after seq {seq} are covered by the hash chain only, until the next "
            "checkpoint"
        )
    return 0


def _checkpoint(_args: argparse.Namespace) -> int:
    loaded = _load()
    if loaded is None:
        return EXIT_CONFIG
    engine, signing_key = loaded
    try:
        with transaction(make_sessionmaker(engine)) as session:
            signed = audit.checkpoint(session, signing_key=signing_key, at=datetime.now(UTC))
            seq, head_hash = signed.seq, signed.head_hash
    except SQLAlchemyError as exc:
        return _fail(
            f"cannot write the checkpoint ({type(exc).__name__}); check EH_DATABASE_URL",
            code=EXIT_UNAVAILABLE,
        )
    finally:
        engine.dispose()
    print(f"checkpoint signed: seq {seq}, head {head_hash}")
    return 0


def _public_key(_args: argparse.Namespace) -> int:
    settings = settings_or_explain()
    if settings is None:
        return EXIT_CONFIG
    try:
        key = audit.signing_key_from_text(
            resolve_secrets(settings).audit_signing_key.get_secret_value()
        )
    except KeyMaterialError as exc:
        return _fail(str(exc), code=EXIT_CONFIG)
    print(base64.b64encode(public_key_from_private(key)).decode("ascii"))
    return 0


def _load() -> tuple[Engine, bytes] | None:
    """The database engine and the audit signing key, or None after explaining what is wrong."""
    settings = settings_or_explain()
    if settings is None:
        return None
    settings = resolve_secrets(settings)
    try:
        key = audit.signing_key_from_text(settings.audit_signing_key.get_secret_value())
    except KeyMaterialError as exc:
        _fail(str(exc), code=EXIT_CONFIG)
        return None
    return make_engine(settings.sqlalchemy_url), key


def _decode_public(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise KeyMaterialError(
            "a checkpoint public key is the base64 of 32 bytes (audit public-key)"
        )
    return key


def _fail(message: str, *, code: int = EXIT_BROKEN) -> int:
    print(f"escalation-hub audit: {message}", file=sys.stderr)
    return code
