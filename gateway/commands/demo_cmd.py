"""``escalation-hub demo``: watch one escalation travel between three case systems."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.demo.stack import Stack
from gateway.demo.story import register as register_agencies
from gateway.demo.story import walk

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="walk one escalation from stage 1 to partnership resolution on loopback",
        description=(
            "Starts the hub on the embedded default in a temporary directory, three simulated "
            "case systems (children's social care speaking JSON workflow events, health "
            "speaking FHIR R4, police speaking records-management XML) and the business "
            "office's mailbox and webhook, all on 127.0.0.1; then walks one Northamptonshire "
            "escalation through every stage, showing what each case system filed in its own "
            "format under its own case reference (decrypted, signature checked)."
        ),
    )
    p.add_argument(
        "--show-documents",
        action="store_true",
        help="print the last decrypted update each case system filed, in its own format",
    )
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    say = print
    say("escalation-hub demo: starting the hub, three case systems and a business-office inbox")
    with Stack() as stack:
        say(f"hub at {stack.base_url} (OpenAPI {stack.base_url}/v1/openapi.json)\n")
        story = register_agencies(stack.base_url, stack.admin_token, say)
        try:
            walk(story, stack.inbox, say)
            if args.show_documents:
                for agency in story.agencies.values():
                    last = agency.system.received[-1]
                    say(
                        f"\n{agency.name} last filed ({last.media_type}, "
                        f"webhook-id {last.webhook_id}):"
                    )
                    document = last.document
                    say(document if isinstance(document, str) else json.dumps(document, indent=2))
        finally:
            story.close()
    say(
        f"\nescalation {story.escalation_id}: {len(story.steps)} events from three native "
        "formats; every update decrypted with the recipient's own key, its Standard Webhooks "
        "signature verified, and filed in the recipient's own format under its own reference."
    )
    return 0
