"""The hub as real operating-system processes (``escalation-hub serve``), killed and restarted.

``hub_environment`` turns the demo stack's complete test configuration into ``EH_*`` variables;
``HubProcess`` starts one ``serve`` (every role, or ``--role ...``), waits until it announces
itself (and, for the gateway, until ``/healthz`` answers), and kills it with SIGKILL or stops
it with SIGTERM. Its JSON log lines are kept in a file for the test to read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from gateway.demo.stack import stack_settings

__all__ = ["HubProcess", "HubStartError", "hub_environment"]

READY_MARK = "running,"  # the line ``serve`` prints once its roles have started


class HubStartError(RuntimeError):
    """A hub process exited or did not become ready in time (the message has its log tail)."""


def _text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value.value if hasattr(value, "value") else value)


def hub_environment(data_dir: Path, **overrides: Any) -> dict[str, str]:
    """This process's environment without EH_*, plus every setting of a test hub as EH_*."""
    settings = stack_settings(data_dir, **overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EH_")}
    for name in type(settings).model_fields:
        env[f"EH_{name.upper()}"] = _text(getattr(settings, name))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class HubProcess:
    """One ``escalation-hub serve`` process, restartable with the same settings."""

    def __init__(
        self, env: dict[str, str], *, roles: Iterable[str] = (), name: str, workdir: Path
    ) -> None:
        self.env = env
        self.roles = tuple(roles)
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def serves_http(self) -> bool:
        return not self.roles or "gateway" in self.roles

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['EH_PORT']}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60) -> None:
        """Start the process and wait until it is ready; raise HubStartError otherwise."""
        if self.alive:
            raise HubStartError(f"{self.name} is already running (pid {self.pid})")
        argv = [sys.executable, "-m", "gateway.cli", "serve"]
        for role in self.roles:
            argv += ["--role", role]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        self._wait_ready(offset, timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() the hub first"
        return self.process.pid

    def _wait_ready(self, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        announced = False
        while time.monotonic() < deadline:
            if not self.alive:
                raise HubStartError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            announced = announced or READY_MARK in self.log_text(offset)
            if announced and (not self.serves_http or self._healthy()):
                return
            time.sleep(0.1)
        self.kill()
        raise HubStartError(f"{self.name} was not ready after {timeout}s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, exactly like a crash."""
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.kills += 1

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait; SIGKILL if it does not end within ``timeout``."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self, offset: int = 0) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The structured log entries named ``event`` (JSON lines), oldest first."""
        found = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                found.append(entry)
        return found
