"""Running the hub: every role in one process (embedded default) or one role per process.

Start-up first loads every installed connector (one that fails to load stops it), then
declares the bus topology and starts each role's threads: the outbox relay (writer roles),
the decide workers and the background re-encryption (router), the delivery dispatcher with a
periodic ``recover()`` of free delivery lanes (delivery), the deadline sweep and the audit
checkpoints (scheduler).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

import uvicorn
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connectors.registry import Registry, default_registry
from gateway.api.app import create_app
from gateway.bootstrap import Hub
from gateway.bus.consumer import PoisonMessage, Worker
from gateway.bus.publisher import Publisher, broker_connection
from gateway.bus.relay import Relay
from gateway.bus.topology import Topology
from gateway.services import checkpoints
from gateway.services.delivery import Dispatcher, handle_deliver
from gateway.services.rekey import Rekeyer
from gateway.services.routing import handle_decide
from gateway.services.scheduler import Scheduler
from gateway.store.audit import signing_key_from_text
from gateway.store.db import transaction
from gateway.store.models import InboundEvent

__all__ = ["ALL_ROLES", "RECOVER_EVERY_SECONDS", "Role", "Runtime"]

# How often the delivery role takes lanes with pending rows and a free or expired lease
# (a cheap query): a killed process's lanes are taken over at most this long after expiry.
RECOVER_EVERY_SECONDS = 10.0

logger = logging.getLogger(__name__)


class Role(StrEnum):
    GATEWAY = "gateway"
    ROUTER = "router"
    DELIVERY = "delivery"
    SCHEDULER = "scheduler"


ALL_ROLES = frozenset(Role)
_WRITERS = {Role.GATEWAY, Role.ROUTER, Role.SCHEDULER}  # roles that write outbox rows


class Runtime:
    """Starts and stops the threads of the chosen roles around one Hub."""

    def __init__(
        self, hub: Hub, roles: Iterable[Role] = ALL_ROLES, *, partitions: list[int] | None = None
    ) -> None:
        self.hub = hub
        self.roles = frozenset(roles)
        self.partitions = partitions
        self.connectors: Registry | None = None
        self.rekeyer: Rekeyer | None = None
        self.checkpointer: checkpoints.Checkpointer | None = None
        self._recovering: _Every | None = None
        self.topology = Topology.from_settings(hub.settings)
        self.publisher = Publisher.from_settings(hub.settings, self.topology)
        self.relay: Relay | None = None
        self.dispatcher: Dispatcher | None = None
        self.scheduler: Scheduler | None = None
        self.workers: list[Worker] = []
        self.server: uvicorn.Server | None = None
        self._broker_checked = (0.0, False)

    def start(self) -> None:
        """Load the connectors, declare the topology, recover what a crash left, start roles."""
        settings = self.hub.settings
        self.connectors = default_registry()  # ConnectorLoadError stops start-up here
        with broker_connection(settings.broker_url, timeout=settings.broker_timeout) as conn:
            self.topology.declare(conn)
        if self.roles & _WRITERS:
            self.relay = Relay(
                sessions=self.hub.sessions,
                publisher=self.publisher,
                interval=settings.relay_interval,
                clock=self.hub.clock,
            )
            self.relay.start()
        if Role.ROUTER in self.roles:
            self._start_router()
        if Role.DELIVERY in self.roles:
            self._start_delivery()
        if Role.SCHEDULER in self.roles:
            self._start_scheduler()
        logger.info("runtime.started", extra={"roles": sorted(self.roles)})

    def _poke(self) -> None:
        if self.relay is not None:
            self.relay.notify()

    def _start_router(self) -> None:
        self.recover_undecided()

        def decide(message_id: str, payload: Mapping[str, Any]) -> None:
            handle_decide(self.hub, message_id, payload)
            self._poke()

        self._start_worker("decide", decide, name="router", consume_from=self.partitions)
        self.rekeyer = Rekeyer(self.hub)
        self.rekeyer.start()  # only when the key ring holds an old key

    def _start_delivery(self) -> None:
        dispatcher = Dispatcher(self.hub)
        self.dispatcher = dispatcher
        # The in-process bus means one process: leases left by its earlier life are void.
        dispatcher.recover(only_process=self.hub.settings.embedded)

        def deliver(message_id: str, payload: Mapping[str, Any]) -> None:
            handle_deliver(self.hub, message_id, payload, dispatcher=dispatcher)

        prefetch = self.hub.settings.delivery_concurrency * 4
        self._start_worker("deliver", deliver, name="delivery", prefetch=prefetch)
        self._recovering = _Every(RECOVER_EVERY_SECONDS, dispatcher.recover, name="eh-recover")
        self._recovering.start()

    def _start_scheduler(self) -> None:
        self.scheduler = Scheduler(self.hub)
        self.scheduler.start()
        key = signing_key_from_text(self.hub.settings.audit_signing_key.get_secret_value())
        poll = checkpoints.CHECKPOINT_POLL_SECONDS  # read now: tests may shorten it
        self.checkpointer = checkpoints.Checkpointer(self.hub, signing_key=key, poll=poll)
        self.checkpointer.start()

    def _start_worker(
        self,
        topic: str,
        handler: Callable[[str, Mapping[str, Any]], None],
        *,
        name: str,
        prefetch: int = 1,
        consume_from: list[int] | None = None,
    ) -> None:
        settings = self.hub.settings
        conn = broker_connection(settings.broker_url, timeout=settings.broker_timeout)
        worker = Worker(
            conn,
            self.topology,
            topic,
            handler,
            name=name,
            prefetch=prefetch,
            consume_from=consume_from,
        )
        worker.start_in_thread()
        self.workers.append(worker)

    def recover_undecided(self) -> int:
        """Decide events accepted but not yet decided (e.g. the process died in between).

        Reads the partial index of undecided events, never every escalation. An escalation
        whose next event cannot be decided stays waiting for an operator (it is audited as
        'undecidable'); it must not stop the others or the start-up.
        """
        with transaction(self.hub.sessions) as session:
            waiting = select(InboundEvent.escalation_id).where(InboundEvent.decided_at.is_(None))
            pending = session.scalars(waiting.distinct()).all()
        decided = 0
        for escalation_id in pending:
            try:
                decided += handle_decide(
                    self.hub, f"recover:{escalation_id}", {"escalation_id": escalation_id}
                )
            except PoisonMessage:
                logger.warning("runtime.recover_stuck", extra={"escalation_id": escalation_id})
        if decided:
            self._poke()
        return decided

    def broker_ready(self) -> bool:
        """Whether the broker answers; cached for two seconds so probes stay cheap."""
        checked_at, ok = self._broker_checked
        if time.monotonic() - checked_at < 2.0:
            return ok
        settings = self.hub.settings
        try:
            with broker_connection(settings.broker_url, timeout=settings.broker_timeout) as c:
                c.ensure_connection(max_retries=1, timeout=settings.broker_timeout)
            ok = True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            ok = False
        self._broker_checked = (time.monotonic(), ok)
        return ok

    def make_server(self) -> uvicorn.Server:
        app = create_app(
            self.hub,
            on_accepted=self._poke,
            broker_ready=self.broker_ready,
            connectors=self.connectors,
        )
        config = uvicorn.Config(
            app,
            host=self.hub.settings.host,
            port=self.hub.settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        return self.server

    def serve_forever(self) -> None:
        """Run the HTTP gateway in this thread if it is a role, else wait until interrupted."""
        if Role.GATEWAY in self.roles:
            self.make_server().run()
            return
        stop = threading.Event()
        try:
            stop.wait()
        except KeyboardInterrupt:
            return

    def stop(self) -> None:
        """Stop in dependency order: intake first, then workers, relay and deliveries."""
        if self.server is not None:
            self.server.should_exit = True
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:  # their handlers use the relay, deliveries and the store
            if not worker.join(timeout=10.0):
                logger.warning("runtime.worker_still_running", extra={"worker": worker.name})
        for thread in (self.rekeyer, self.checkpointer, self._recovering, self.scheduler):
            if thread is not None:
                thread.stop()
        if self.relay is not None:
            self.relay.stop()
        if self.dispatcher is not None:
            self.dispatcher.close()
        self.publisher.close()
        logger.info("runtime.stopped")


class _Every:
    """Calls ``job`` every ``seconds`` on a thread until stopped; a failure is logged and the
    job runs again next time (a bug in one run must not end periodic recovery for good)."""

    def __init__(self, seconds: float, job: Callable[[], object], *, name: str) -> None:
        self._seconds, self._job, self._name = seconds, job, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                self._job()
            except SQLAlchemyError as exc:
                logger.warning(f"{self._name}.failed", extra={"error": type(exc).__name__})
            except Exception as exc:  # noqa: BLE001 - a periodic job's outermost loop: go on
                frames = "".join(traceback.format_tb(exc.__traceback__))
                logger.error(
                    f"{self._name}.crashed", extra={"error": type(exc).__name__, "frames": frames}
                )
