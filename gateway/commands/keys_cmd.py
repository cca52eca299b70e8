"""``escalation-hub keys rotate|status|reencrypt|retire``: the at-rest data key ring.

Rotation never takes the hub down: old keys keep decrypting while the new one encrypts, rows
are re-sealed in the background (router role) or by ``keys reencrypt``, and an old key is
retired only once ``keys status`` shows no row under it. Output names key ids, never keys.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from gateway.bootstrap import Hub, build_hub
from gateway.commands.common import EXIT_CONFIG, settings_or_explain
from gateway.commands.keys_ring import (
    DevRing,
    RingError,
    add_key,
    drop_key,
    key_ids,
    new_key_id,
    ring_in_dev_file,
    write_secret_file,
)
from gateway.devsecrets import resolve_secrets
from gateway.services import rekey
from gateway.settings import Settings
from gateway.store.audit import append
from gateway.store.db import transaction
from security.errors import KeyMaterialError

__all__ = ["register"]

EXIT_REFUSED: Final = 1
_PROCEDURE: Final = """\
Rolling restart, no downtime (each step once every process runs the previous one):
  1. give every process the new EH_DATA_KEYS, keeping EH_DATA_KEY_ACTIVE={old}
     (everyone can now read rows sealed under {new});
  2. set EH_DATA_KEY_ACTIVE={new} everywhere (new rows are sealed under {new});
  3. router processes re-seal old rows in the background; or run
     'escalation-hub keys reencrypt' and watch 'escalation-hub keys status';
  4. when no row uses {old}: 'escalation-hub keys retire {old}', then restart without it.
A single embedded process can do steps 1 and 2 in one restart."""


def register(sub: Any) -> None:
    """Add the ``keys`` command and its actions."""
    p = sub.add_parser("keys", help="rotate, inspect and retire the at-rest data keys")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    rotate = ksub.add_parser("rotate", help="add a new data key and make it the active one")
    rotate.add_argument("--key-id", help="the new key's id (default: dev-N or k<date>-<hex>)")
    _secret_options(rotate)
    rotate.set_defaults(handler=_rotate)
    status = ksub.add_parser("status", help="count sealed rows per key id (no decryption)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)
    again = ksub.add_parser("reencrypt", help="re-seal rows still under an old key, in batches")
    again.add_argument("--batch", type=int, default=200, help="rows per transaction (200)")
    again.set_defaults(handler=_reencrypt)
    retire = ksub.add_parser("retire", help="drop an old key once no row uses it")
    retire.add_argument("key_id", metavar="KID", help="the key id to retire")
    _secret_options(retire)
    retire.set_defaults(handler=_retire)


def _secret_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", type=Path, help="outside development: write the new values here (mode 0600)"
    )
    parser.add_argument(
        "--print-secret", action="store_true", help="outside development: print them to stdout"
    )


def _rotate(args: argparse.Namespace) -> int:
    settings = settings_or_explain()
    if settings is None:
        return EXIT_CONFIG
    try:
        if ring_in_dev_file(settings):
            return _rotate_dev_file(settings, args.key_id)
        return _rotate_env(settings, args)
    except (RingError, KeyMaterialError) as exc:
        return _refuse(str(exc))


def _rotate_dev_file(settings: Settings, key_id: str | None) -> int:
    dev = DevRing.load(resolve_secrets(settings))  # creates the file on a first run
    old, ids = dev.active, key_ids(dev.ring)
    new = key_id or new_key_id(ids, development=True)
    dev.save(add_key(dev.ring, new), active=new)
    print(f"data key ring (development, {dev.path}): added {new}, now active; kept for reading:")
    print(f"  {', '.join(ids)}")
    print(f"restart the hub to seal with {new}; old rows are re-sealed in the background")
    print(f"(or run 'escalation-hub keys reencrypt'); then 'escalation-hub keys retire {old}'")
    return 0


def _rotate_env(settings: Settings, args: argparse.Namespace) -> int:
    if not args.print_secret and args.output is None:
        return _refuse(_WHERE_TO_WRITE, code=EXIT_CONFIG)
    ring = settings.data_keys.get_secret_value()
    ids = key_ids(ring)
    old = settings.data_key_active or ids[-1]
    new = args.key_id or new_key_id(ids, development=False)
    text = (
        f"# escalation-hub data key rotation: {old} -> {new} (step 1 keeps "
        f"EH_DATA_KEY_ACTIVE={old}; step 2 sets it to {new})\n"
        f"EH_DATA_KEYS={add_key(ring, new)}\nEH_DATA_KEY_ACTIVE={new}\n"
    )
    _emit(text, args)
    print(f"generated data key {new}; the ring becomes: {', '.join([*ids, new])}", file=sys.stderr)
    print(_PROCEDURE.format(old=old, new=new), file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    hub = _hub()
    if hub is None:
        return EXIT_CONFIG
    try:
        with hub.sessions() as session:
            counts = rekey.count_by_key(session)
    except SQLAlchemyError as exc:
        return _refuse(f"cannot read the database ({type(exc).__name__}); run 'db upgrade'?")
    finally:
        hub.close()
    ring = hub.sealer.ring
    if args.json:
        print(json.dumps({"active": ring.active_key_id, "ring": ring.key_ids, "rows": counts}))
        return 0
    print(f"active key {ring.active_key_id}; ring: {', '.join(ring.key_ids)}")
    for column, found in counts.items():
        shown = ", ".join(f"{k}={n}" for k, n in sorted(found.items())) or "no rows"
        print(f"  {column}: {shown}")
    old = _rows_not_under(counts, ring.active_key_id)
    if old:
        print(f"{old} row(s) are under other keys: run 'escalation-hub keys reencrypt'")
    return 0


def _reencrypt(args: argparse.Namespace) -> int:
    if args.batch < 1:
        return _refuse("--batch must be at least 1", code=EXIT_CONFIG)
    hub = _hub()
    if hub is None:
        return EXIT_CONFIG
    active = hub.sealer.ring.active_key_id
    print(f"re-sealing rows under keys other than {active}, {args.batch} per transaction")
    totals: dict[str, int] = {}

    def progress(batch: rekey.Batch) -> None:
        totals[batch.column] = totals.get(batch.column, 0) + batch.resealed
        if batch.seen:
            print(f"  {batch.column}: {totals[batch.column]} re-sealed", flush=True)

    try:
        resealed, unreadable = rekey.reencrypt(
            hub, size=args.batch, actor="keys-cli", on_batch=progress
        )
    except SQLAlchemyError as exc:
        return _refuse(f"the database failed ({type(exc).__name__}); run it again to resume")
    finally:
        hub.close()
    print(f"done: {resealed} row(s) re-sealed under {active}")
    if unreadable:
        return _refuse(
            f"{unreadable} row(s) could not be unsealed (their key is not in EH_DATA_KEYS, or "
            "they were altered); they are unchanged: add the missing key and run this again"
        )
    return 0


def _retire(args: argparse.Namespace) -> int:
    settings = settings_or_explain()
    if settings is None:
        return EXIT_CONFIG
    dev = ring_in_dev_file(settings)
    if not dev and not args.print_secret and args.output is None:
        return _refuse(_WHERE_TO_WRITE, code=EXIT_CONFIG)
    hub = _hub(settings)
    if hub is None:
        return EXIT_CONFIG
    try:
        refusal = _retire_refusal(hub, args.key_id)
        if refusal is not None:
            return _refuse(refusal)
        if dev:
            ring = DevRing.load(settings)
            ring.save(drop_key(ring.ring, args.key_id), active=ring.active)
            print(f"retired {args.key_id} from {ring.path}; restart the hub to drop it")
        else:
            _emit(
                f"EH_DATA_KEYS={drop_key(settings.data_keys.get_secret_value(), args.key_id)}\n",
                args,
            )
            print(f"retired {args.key_id}: roll out the new EH_DATA_KEYS", file=sys.stderr)
        _audit_retired(hub, args.key_id)
    except (RingError, KeyMaterialError) as exc:
        return _refuse(str(exc))
    except SQLAlchemyError as exc:
        return _refuse(f"cannot read the database ({type(exc).__name__}); nothing was changed")
    finally:
        hub.close()
    return 0


def _retire_refusal(hub: Hub, key_id: str) -> str | None:
    """Why ``key_id`` may not be retired now, or None."""
    ring = hub.sealer.ring
    if key_id not in ring.key_ids:
        return f"key id '{key_id}' is not in the ring ({', '.join(ring.key_ids)})"
    if key_id == ring.active_key_id:
        return f"key '{key_id}' is the active key: rotate to a new key first"
    with hub.sessions() as session:
        counts = rekey.count_by_key(session)
    using = {column: found[key_id] for column, found in counts.items() if found.get(key_id)}
    if not using:
        return None
    shown = ", ".join(f"{column}={n}" for column, n in using.items())
    return (
        f"{sum(using.values())} row(s) still use key '{key_id}' ({shown}): run "
        "'escalation-hub keys reencrypt' (or wait for the router), then retire it"
    )


def _audit_retired(hub: Hub, key_id: str) -> None:
    with transaction(hub.sessions) as session:
        append(
            session,
            at=hub.clock(),
            action="data_key_retired",
            actor="keys-cli",
            escalation_id=None,
            detail={"key_id": key_id, "active_key": hub.sealer.ring.active_key_id},
        )


_WHERE_TO_WRITE: Final = (
    "the new values hold key material: give --output FILE (created with mode 0600) or "
    "--print-secret to write them to stdout"
)


def _emit(text: str, args: argparse.Namespace) -> None:
    if args.output is not None:
        write_secret_file(args.output, text)
        print(f"new values written to {args.output} (mode 0600)", file=sys.stderr)
    if args.print_secret:
        sys.stdout.write(text)


def _rows_not_under(counts: dict[str, dict[str, int]], active: str) -> int:
    return sum(n for found in counts.values() for k, n in found.items() if k != active)


def _hub(settings: Settings | None = None) -> Hub | None:
    """The hub with the ring as configured; in development, the ring of dev-secrets.json."""
    settings = settings or settings_or_explain()
    if settings is None:
        return None
    try:
        if ring_in_dev_file(settings):
            dev = DevRing.load(resolve_secrets(settings))  # creates the file on a first run
            ring = {"data_keys": SecretStr(dev.ring), "data_key_active": dev.active}
            settings = settings.model_copy(update=ring)
        return build_hub(settings)
    except (KeyMaterialError, RingError) as exc:
        _refuse(f"the data key ring (EH_DATA_KEYS / EH_DATA_KEY_ACTIVE): {exc}", code=EXIT_CONFIG)
        return None


def _refuse(message: str, *, code: int = EXIT_REFUSED) -> int:
    print(f"escalation-hub keys: {message}", file=sys.stderr)
    return code
