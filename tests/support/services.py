"""Private PostgreSQL and RabbitMQ instances: the machine's real servers, our own processes.

Outage tests stop and start these, never the shared servers on 5432 and 5672 that other test
runs use. Each instance lives in a temporary directory with its own ports (RabbitMQ also its
own Erlang port mapper and cookie) and is removed by ``destroy()``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.demo.stack import free_port

__all__ = [
    "PrivatePostgres",
    "PrivateRabbit",
    "ServiceError",
    "delete_bus",
    "find_postgres_bin",
    "find_rabbit_scripts",
    "port_open",
]

PG_USER = "postgres"


class ServiceError(RuntimeError):
    """A private instance could not be started or stopped (the message quotes its output)."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{argv[0]} did not finish: {type(exc).__name__}: {exc}") from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise ServiceError(f"{' '.join(argv[:3])} exited {done.returncode}:\n{tail}")
    return output


def _owned_tmpdir(prefix: str, user: str | None) -> Path:
    """A fresh directory, handed to ``user`` when we are root (servers refuse to run as root)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    return root


def find_postgres_bin() -> Path | None:
    """PostgreSQL's bin directory: $EH_TEST_PG_BIN, the newest /usr/lib/postgresql, or PATH."""
    configured = os.environ.get("EH_TEST_PG_BIN")
    candidates = [Path(configured)] if configured else []
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, trust auth on loopback."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self._user = PG_USER if os.geteuid() == 0 else None
        self.root = _owned_tmpdir("eh-rel-pg-", self._user)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()

    def _argv(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def init(self) -> None:
        """Create the cluster (superuser 'postgres', trust authentication)."""
        _run(
            self._argv("initdb", "-D", str(self.data), "-A", "trust", "-U", PG_USER, "--no-sync"),
            timeout=120,
        )

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        control = ["-D", str(self.data), "-o", options, "-l", str(self.log)]
        _run(
            self._argv("pg_ctl", *control, "-w", "-t", str(int(timeout)), "start"),
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the server ('fast' ends every session; 'immediate' is like a crash)."""
        _run(
            self._argv(
                "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop"
            ),
            timeout=timeout + 10,
        )

    @property
    def running(self) -> bool:
        return port_open(self.port)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"eh_rel_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        """Stop (if running) and remove the cluster's directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_rabbit_scripts() -> Path | None:
    """RabbitMQ's own scripts (not Debian's wrapper, which switches to the rabbitmq user)."""
    configured = os.environ.get("EH_TEST_RABBITMQ_BIN")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path("/usr/lib/rabbitmq/bin"))
    on_path = shutil.which("rabbitmq-server")
    if on_path and os.geteuid() != 0:
        candidates.append(Path(on_path).parent)
    found = (c for c in candidates if (c / "rabbitmq-server").exists())
    return next((c for c in found if (c / "rabbitmqctl").exists()), None)


class PrivateRabbit:
    """A RabbitMQ node of our own: own name, ports, Erlang port mapper, cookie and data."""

    def __init__(self, scripts: Path) -> None:
        self.scripts = scripts
        self.root = Path(tempfile.mkdtemp(prefix="eh-rel-mq-"))
        self.node = f"eh-rel-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.pid_file = self.root / "node.pid"
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (self.root / "enabled_plugins").write_text("[].\n")  # no management listener
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
        )  # replaces the machine's config, which listens on 5672
        (self.root / "rabbitmq-env.conf").write_text("")

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        return {
            **base,
            "HOME": str(self.root),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _ctl(self, *args: str, timeout: float) -> str:
        argv = [str(self.scripts / "rabbitmqctl"), "-n", self.node, *args]
        return _run(argv, env=self.env, timeout=timeout)

    def start(self, timeout: float = 120) -> None:
        """Start the node detached and wait until RabbitMQ runs and accepts AMQP."""
        _run([str(self.scripts / "rabbitmq-server"), "-detached"], env=self.env, timeout=30)
        try:
            self._ctl("wait", str(self.pid_file), "--timeout", str(int(timeout)), timeout=timeout)
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n(node log: {self.root / 'log'})") from exc
        if not port_open(self.port):
            raise ServiceError(f"RabbitMQ node {self.node} runs but port {self.port} is closed")

    def stop(self, timeout: float = 60) -> None:
        """Stop the node and wait for its process to end."""
        self._ctl("stop", str(self.pid_file), timeout=timeout)

    @property
    def running(self) -> bool:
        return port_open(self.port)

    def destroy(self) -> None:
        """Stop the node (if running) and its port mapper; remove its directory."""
        try:
            if self.pid_file.exists() and self.running:
                self.stop()
        finally:
            epmd = shutil.which("epmd", path=f"{os.environ.get('PATH', '')}:/usr/lib/erlang/bin")
            if epmd is not None:
                subprocess.run(
                    [epmd, "-kill"], env=self.env, capture_output=True, timeout=10, check=False
                )
            shutil.rmtree(self.root, ignore_errors=True)


def delete_bus(url: str, prefix: str, partitions: int) -> None:
    """Remove a hub's queues and exchanges (``prefix``) from a broker shared with others."""
    from kombu.connection import Connection

    queues = [f"{prefix}.decide.{n}" for n in range(partitions)]
    queues += [f"{prefix}.deliver", f"{prefix}.notify", f"{prefix}.dead"]
    with Connection(url, connect_timeout=5) as conn:
        channel = conn.default_channel
        for name in queues:
            channel.queue_delete(name)
        for name in (f"{prefix}.events", f"{prefix}.dlx"):
            channel.exchange_delete(name)
