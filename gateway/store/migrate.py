"""Schema migrations (Alembic, shipped in gateway/migrations): upgrade, current, pending."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from gateway.store.db import make_engine

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current", "head", "pending", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

logger = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    """An Alembic config built in code (no alembic.ini); the URL travels in ``attributes``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction; a no-op when already there."""
    before = current(url)
    command.upgrade(alembic_config(url), revision)
    logger.info(
        "database migrated",
        extra={"from_revision": before, "to_revision": current(url), "target": revision},
    )


def current(url: str) -> str | None:
    """The database's revision, or None for a database never migrated (or not yet created)."""
    if _missing_sqlite_file(url):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()
    return ",".join(sorted(heads)) or None


def head() -> str:
    """The newest revision shipped with this release."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return ",".join(sorted(script.get_heads()))


def pending(url: str) -> bool:
    """True if the database is not at the shipped head revision."""
    return current(url) != head()


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()
