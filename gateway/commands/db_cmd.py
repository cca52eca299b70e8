"""``escalation-hub db upgrade|current``: apply or show the schema migrations."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gateway.commands.common import EXIT_CONFIG, settings_or_explain
from gateway.store import migrate

__all__ = ["register"]

EXIT_FAILED = 1


def register(sub: Any) -> None:
    """Add the ``db`` command and its actions."""
    p = sub.add_parser("db", help="migrate the hub's database (SQLite or PostgreSQL)")
    dsub = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = dsub.add_parser("upgrade", help="apply pending migrations to the configured database")
    up.add_argument("--revision", default="head", help="the revision to upgrade to (default: head)")
    up.set_defaults(handler=_upgrade)
    cur = dsub.add_parser("current", help="show the database's revision and the shipped head")
    cur.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_or_explain()
    if settings is None:
        return EXIT_CONFIG
    url = settings.sqlalchemy_url
    try:
        before = migrate.current(url)
        migrate.upgrade(url, args.revision)
        after = migrate.current(url)
    except (CommandError, SQLAlchemyError) as exc:
        return _failed("upgrade", url, exc)
    print(f"database {_shown(url)}")
    if before == after:
        print(f"already at {after or '(empty)'}; nothing to do")
    else:
        print(f"upgraded from {before or '(empty)'} to {after}")
    return 0


def _current(_args: argparse.Namespace) -> int:
    settings = settings_or_explain()
    if settings is None:
        return EXIT_CONFIG
    url = settings.sqlalchemy_url
    try:
        revision = migrate.current(url)
    except SQLAlchemyError as exc:
        return _failed("read the revision of", url, exc)
    head = migrate.head()
    print(f"database {_shown(url)}")
    print(f"current {revision or '(empty)'}; shipped head {head}")
    if revision != head:
        print("run 'escalation-hub db upgrade' to apply the pending migrations")
    return 0


def _failed(verb: str, url: str, exc: Exception) -> int:
    """Report a database or migration failure by its kind and first line, without secrets."""
    cause = getattr(exc, "orig", None) or exc
    first_line = str(cause).splitlines()[0] if str(cause) else ""
    print(
        f"escalation-hub: cannot {verb} the database {_shown(url)}: "
        f"{type(cause).__name__}: {first_line}\n"
        "check EH_DATABASE_URL and that the database server is running",
        file=sys.stderr,
    )
    return EXIT_FAILED


def _shown(url: str) -> str:
    """The URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparseable EH_DATABASE_URL)"
