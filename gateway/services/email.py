"""Email to the business office: a plain-text notice composed from a Notification, sent by SMTP.

Errors (smtplib and socket errors are mapped here, at the boundary)::

    MailError                 carries .code (the SMTP reply code, or None) and .retriable
    ├── MailRetriable         timeouts, lost connections, 4xx replies: try again later
    └── MailRefused           5xx replies, refused addresses: retrying will not help

The message carries no child identifiers, names or narratives: a Notification has none
(its model forbids extra fields), and only its fields are written.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
import smtplib
import textwrap
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Final, Protocol

from schemas.updates import Notification

__all__ = [
    "DELIVERY_HEADER",
    "MailError",
    "MailRefused",
    "MailRetriable",
    "Mailer",
    "SmtpMailer",
    "compose",
    "message_id_for",
]

DELIVERY_HEADER: Final = "X-Escalation-Hub-Delivery"
_MESSAGE_ID_DOMAIN: Final = "escalation-hub.invalid"
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_MAX_SHOWN: Final = 200
_ACCEPTED: Final = 250  # smtplib raises unless DATA is answered 250
# Headers unfolded up to RFC 5322's hard limit: ids stay verbatim (no encoded words) for
# mailbox rules and de-duplication; the body is wrapped at 72 columns instead.
_POLICY: Final = email.policy.default.clone(max_line_length=998)
_WIDTH: Final = 72


class MailError(Exception):
    """Sending one message failed; ``code`` is the SMTP reply code where there was one."""

    retriable: bool = False

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MailRetriable(MailError):
    """A temporary failure: timeout, dropped connection or a 4xx reply."""

    retriable = True


class MailRefused(MailError):
    """A permanent failure: a 5xx reply or every recipient refused for good."""


class Mailer(Protocol):
    """Sends one composed message to one address, raising MailError on failure."""

    def send(self, message: EmailMessage, *, to: str) -> int:
        """Send and return the SMTP reply code of the accepted message."""
        ...


def message_id_for(delivery_id: str) -> str:
    """A Message-ID made from the delivery id, stable across repeats (hashed if not an atom)."""
    left = delivery_id if _ATOM.fullmatch(delivery_id) else _digest(delivery_id)
    return f"<{left}@{_MESSAGE_ID_DOMAIN}>"


def compose(notification: Notification, *, delivery_id: str, sender: str, to: str) -> EmailMessage:
    """Build the plain-text message for one notification and one delivery."""
    n = notification
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = (
        f"[escalation-hub] {n.partnership} {n.escalation_id}: stage {n.stage} {n.recipient.value}"
    )
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(n.occurred_at.timestamp(), usegmt=True)
    message["Message-ID"] = message_id_for(delivery_id)
    message[DELIVERY_HEADER] = delivery_id
    message.set_content(_body(n))
    return message


def _body(n: Notification) -> str:
    what = (
        f"Escalation {n.escalation_id} in partnership {n.partnership} reached stage {n.stage} "
        f"(tier {n.tier}) at {n.occurred_at.isoformat()}, so the "
        f"{n.recipient.value.replace('_', ' ')} is notified."
    )
    paragraphs = [
        *(["Immediate attention is needed."] if n.immediate else []),
        what,
        f"Reason: {n.reason}",
        f"Clause: {n.clause}",
        f"Escalation id: {n.escalation_id}",
        "This message carries no details of the child: open the escalation in your case "
        "system or the hub to see them.",
    ]
    return "\n\n".join(textwrap.fill(p, _WIDTH, break_on_hyphens=False) for p in paragraphs) + "\n"


@dataclass(frozen=True)
class SmtpMailer:
    """Plain SMTP to the configured relay; a fresh connection per message."""

    host: str
    port: int
    sender: str
    timeout: float

    def send(self, message: EmailMessage, *, to: str) -> int:
        """Send one message; map every smtplib/socket failure to MailRetriable or MailRefused."""
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                refused = smtp.send_message(message, from_addr=self.sender, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as exc:
            raise _from_refused(exc.recipients) from None
        except smtplib.SMTPResponseException as exc:
            raise _from_reply(type(exc).__name__, exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise MailRetriable(f"SMTPServerDisconnected: {_short(str(exc))}") from None
        except smtplib.SMTPException as exc:  # e.g. SMTPUTF8 needed but not offered
            raise MailRefused(f"{type(exc).__name__}: {_short(str(exc))}") from None
        except OSError as exc:  # connection refused, reset, timed out (TimeoutError)
            raise MailRetriable(f"{type(exc).__name__}: {_short(str(exc))}") from None
        if refused:
            raise _from_refused(refused)
        return _ACCEPTED


def _from_reply(name: str, code: int, text: bytes | str) -> MailError:
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    detail = f"{name}: SMTP {code} {_short(shown)}"
    if 400 <= code < 500 or code < 0:
        return MailRetriable(detail, code=code if code > 0 else None)
    return MailRefused(detail, code=code)


def _from_refused(recipients: dict[str, tuple[int, bytes]]) -> MailError:
    codes = [code for code, _ in recipients.values()] or [550]
    worst = max(codes)
    return _from_reply("SMTPRecipientsRefused", worst, b"recipient refused")


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_SHOWN else flat[: _MAX_SHOWN - 1] + "…"


def _digest(value: str) -> str:
    return "d-" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]
