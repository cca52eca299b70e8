"""Facts about the machine and the software a benchmark ran on (read-only look-ups)."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from kombu.exceptions import OperationalError

from gateway.bus.publisher import broker_connection

__all__ = ["load_average", "machine_facts", "server_versions"]

_PACKAGES = (
    "fastapi", "starlette", "uvicorn", "h11", "httpx", "pydantic", "sqlalchemy", "psycopg",
    "kombu", "amqp", "joserfc", "cryptography", "standardwebhooks",
)  # fmt: skip


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        found = subprocess.run(  # noqa: S603 - fixed argv, read-only
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.stdout.strip() or None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """Cores, memory, CPU, OS, Python and library versions, commit, load now."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "cpu": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: _version(name) for name in _PACKAGES},
        "commit": _git_commit(),
        "load_average_start": load_average(),
    }


def server_versions(pg_url: str | None, amqp_url: str | None) -> dict[str, str | None]:
    """PostgreSQL's and RabbitMQ's own version strings (None when not used or unreachable)."""
    found: dict[str, str | None] = {"postgresql": None, "rabbitmq": None}
    if pg_url:
        try:
            with psycopg.connect(pg_url, connect_timeout=5) as pg:
                row = pg.execute("SHOW server_version").fetchone()
                found["postgresql"] = str(row[0]) if row else None
        except psycopg.Error:
            pass
    if amqp_url:
        conn = broker_connection(amqp_url, timeout=5)
        try:
            conn.connect()
            version = conn.connection.server_properties.get("version")
            found["rabbitmq"] = version.decode() if isinstance(version, bytes) else str(version)
        except (OSError, OperationalError, *conn.connection_errors):
            pass
        finally:
            conn.release()
    return found
