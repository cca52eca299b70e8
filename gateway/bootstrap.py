"""The composition root: the one place that wires settings, store, keys, bus and clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.devsecrets import resolve_secrets
from gateway.settings import Settings
from gateway.store.db import make_engine, make_sessionmaker, reader
from gateway.store.sealing import Sealer
from security.keyring import KeyRing

__all__ = ["Hub", "build_hub", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Hub:
    """Everything a component needs, built once per process. Nothing connects at import."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # units of work that may write
    reader: Engine  # the same pool, for reads only: on SQLite, never waits for the write lock
    reads: sessionmaker[Session]  # read-only sessions on ``reader``

    sealer: Sealer
    pseudonym_key: bytes = field(repr=False)
    clock: Callable[[], datetime] = utc_now

    def close(self) -> None:
        self.engine.dispose()


def build_hub(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Hub:
    settings = resolve_secrets(settings)
    engine = make_engine(settings.sqlalchemy_url)
    reads = reader(engine)
    keys = settings.data_keys.get_secret_value()
    active = settings.data_key_active or keys.split(",")[-1].split(":", 1)[0].strip()
    ring = KeyRing.from_env_string(keys, active=active)
    return Hub(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        reader=reads,
        reads=make_sessionmaker(reads),
        sealer=Sealer(ring),
        pseudonym_key=settings.pseudonym_key.get_secret_value().encode(),
        clock=clock,
    )
