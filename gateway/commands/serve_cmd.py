"""``escalation-hub serve``: the whole hub in one process, or one role of it."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from gateway.bootstrap import build_hub
from gateway.commands.common import EXIT_CONFIG, configure_logging, settings_or_explain
from gateway.runtime import ALL_ROLES, Role, Runtime
from gateway.store import migrate

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the hub (default: every role in one process on SQLite + in-process bus)",
        description=(
            "Run the hub. With no settings it runs every role in this process on the embedded "
            "default: an SQLite file in ./var and kombu's in-process bus, nothing to install. "
            "With EH_DATABASE_URL (PostgreSQL) and EH_BROKER_URL (RabbitMQ) each role can run "
            "as its own process: --role gateway|router|delivery|scheduler."
        ),
    )
    p.add_argument(
        "--role",
        action="append",
        choices=[r.value for r in Role],
        dest="roles",
        help="run only this role (repeatable; default: all)",
    )
    p.add_argument("--host", help="listen address of the gateway (default EH_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port of the gateway (default EH_PORT, 8080)")
    p.add_argument(
        "--partitions", help="router only: comma-separated decide partitions (default: all)"
    )
    p.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply database migrations on start (default: apply them when embedded)",
    )
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings_or_explain(**overrides)
    if settings is None:
        return EXIT_CONFIG
    configure_logging()
    url = settings.sqlalchemy_url
    if settings.embedded or settings.sqlalchemy_url.startswith("sqlite"):
        if not args.no_migrate:
            migrate.upgrade(url)
    elif migrate.pending(url):
        print(
            "escalation-hub: the database needs migrating: run 'escalation-hub db upgrade'",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    roles = frozenset(Role(r) for r in args.roles) if args.roles else ALL_ROLES
    partitions = [int(p) for p in args.partitions.split(",")] if args.partitions else None
    hub = build_hub(settings)
    runtime = Runtime(hub, roles, partitions=partitions)
    runtime.start()
    _announce(hub.settings, roles)

    def _terminate(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        runtime.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
        hub.close()
    return 0


def _announce(settings: Any, roles: frozenset[Role]) -> None:
    where = "embedded (SQLite + in-process bus)" if settings.embedded else "PostgreSQL/RabbitMQ"
    print(f"escalation-hub: {', '.join(sorted(roles))} running, {where}", file=sys.stderr)
    if Role.GATEWAY in roles:
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"  API        {base}/v1   (OpenAPI: {base}/v1/openapi.json, docs: {base}/v1/docs)",
            file=sys.stderr,
        )
        print(f"  health     {base}/healthz  {base}/readyz  {base}/metrics", file=sys.stderr)
    print("  stop with Ctrl-C", file=sys.stderr)
