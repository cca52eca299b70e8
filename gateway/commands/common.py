"""What several commands share: settings that explain themselves, logging set-up."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from gateway.settings import Settings, load_settings

__all__ = ["EXIT_CONFIG", "configure_logging", "settings_or_explain"]

EXIT_CONFIG = 2
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def settings_or_explain(**overrides: Any) -> Settings | None:
    """Load settings, or print what is wrong (field names and messages, never values)."""
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        print("escalation-hub: the configuration is not valid:", file=sys.stderr)
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(part) for part in error["loc"])
            name = f"EH_{where.upper()}" if where else "settings"
            print(f"  {name}: {error['msg']}", file=sys.stderr)
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__  # never the message: it may hold data
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; a callback URL's path or query may hold a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
