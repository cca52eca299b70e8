"""Where the hub's CPU goes on encryption: the envelope, sealing and signing calls, timed.

While a ``CryptoTimer`` is active, the JWE envelope (``security.envelopes.encrypt_for``, as
the delivery worker calls it), at-rest sealing (``Sealer.seal``/``unseal`` and their byte
forms) and webhook signing (``security.webhooks.sign``) are wrapped to add up the CPU time of
the thread that calls them. Compared with the CPU time of the whole process over the same
window, that is the share of the hub's work spent on each. The hub runs in this process, and
the load generator and receivers do not, so the process CPU time is the hub's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gateway.store.sealing import Sealer
from security import envelopes, webhooks

__all__ = ["CryptoTimer"]

_SEALER_METHODS = ("seal", "unseal", "seal_bytes", "unseal_bytes")


class CryptoTimer:
    """Times the crypto calls of the hub in this process between ``__enter__`` and ``__exit__``."""

    def __init__(self) -> None:
        self.cpu_ns = {"jwe": 0, "sealing": 0, "signing": 0}
        self.calls = dict.fromkeys(self.cpu_ns, 0)
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any]] = []
        self._process_start = 0.0
        self.process_cpu = 0.0

    def _wrap(self, kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time_ns() - started
                with self._lock:
                    self.cpu_ns[kind] += spent
                    self.calls[kind] += 1

        return timed

    def _patch(self, owner: Any, name: str, kind: str) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))
        setattr(owner, name, self._wrap(kind, original))

    def __enter__(self) -> CryptoTimer:
        self._patch(envelopes, "encrypt_for", "jwe")
        self._patch(webhooks, "sign", "signing")
        for method in _SEALER_METHODS:
            self._patch(Sealer, method, "sealing")
        self._process_start = time.process_time()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.process_cpu = time.process_time() - self._process_start
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def shares(self) -> dict[str, Any]:
        """CPU seconds and share of the process's CPU per kind, and the process's total."""
        total = max(self.process_cpu, 1e-9)
        return {
            "process_cpu_seconds": round(self.process_cpu, 3),
            **{
                kind: {
                    "calls": self.calls[kind],
                    "cpu_seconds": round(ns / 1e9, 3),
                    "share": round(ns / 1e9 / total, 4),
                }
                for kind, ns in self.cpu_ns.items()
            },
        }
