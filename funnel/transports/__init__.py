"""Delivery behind one small interface, chosen from config at start-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One email, fully rendered, with every header it needs."""

    key: str  # opaque and unique: outbox file name, provider custom_args
    to: str
    subject: str
    html: str
    text: str
    sender: str
    date: datetime
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    reply_to: str = ""
    category: str | None = None
    to_name: str | None = None
    # The Delivery's public id, handed to the provider so its events find the row.
    delivery_id: str | None = None
    # Optional batching aid (see SharedBody); html and text above stay authoritative.
    shared: SharedBody | None = None
    substitutions: Mapping[str, str] | None = None


@dataclass(frozen=True)
class SharedBody:
    """One rendering of an email for many recipients, with a substitution tag
    wherever a recipient's own value goes (links, name).

    Invariant, checked by whoever attaches it: replacing each tag in ``html`` and
    ``text`` with the message's ``substitutions`` gives exactly the message's own
    ``html`` and ``text``. A provider can then send one body to many people.
    """

    key: str  # equal keys, equal bodies
    html: str
    text: str


@dataclass(frozen=True)
class SendResult:
    key: str
    ok: bool
    provider_id: str | None = None
    error: str | None = None
    # The message may have gone out (a connection lost after its data was handed
    # over): recorded as ``unknown``, never sent again on any transport.
    unknown: bool = False


class TransientSendError(Exception):
    """Worth trying again later (timeouts, 429, 5xx).

    ``results`` holds the messages settled before the failure (a batch that went
    out in several requests): those must be recorded, not sent again.

    ``status`` is the provider's HTTP status when it answered; ``unsure`` names the
    messages of a request that may have been accepted unseen (a timeout after
    sending), so the fallback never hands those to a second transport.
    """

    def __init__(self, message: str, retry_after: float | None = None,
                 results: Sequence[SendResult] = (), *, status: int | None = None,
                 unsure: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.results = list(results)
        self.status = status
        self.unsure = list(unsure)


class AuthError(Exception):
    """The provider refused our credentials: stop rather than fail every send.

    ``results`` as for TransientSendError.
    """

    def __init__(self, message: str = "", results: Sequence[SendResult] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


class Transport(Protocol):
    # True when sending the same key twice delivers it only once (the outbox
    # overwrites one file), so interrupted work can be redone safely.
    idempotent: bool
    max_batch: int

    def send(self, messages: list[Message]) -> list[SendResult]:
        """Send all or raise TransientSendError/AuthError; per-message failures are results."""
        ...


def make_transport(config: Mapping[str, Any]) -> Transport:
    """``MAIL_TRANSPORT``, wrapped in the fallback when ``MAIL_FALLBACK`` names one."""
    main = _one_transport(config, config["MAIL_TRANSPORT"])
    fallback = config.get("MAIL_FALLBACK") or ""
    if not fallback:
        return main
    if fallback != "smtp" or config["MAIL_TRANSPORT"] != "sendgrid":
        raise ValueError("MAIL_FALLBACK=smtp takes over from MAIL_TRANSPORT=sendgrid; "
                         f"{config['MAIL_TRANSPORT']!r} with fallback {fallback!r} is not supported")
    from funnel.transports.fallback import FallbackTransport

    return FallbackTransport(main, _one_transport(config, "smtp"),
                             after_minutes=float(config["FALLBACK_AFTER"]),
                             probe_minutes=float(config["FALLBACK_PROBE_MINUTES"]))


def _one_transport(config: Mapping[str, Any], name: str) -> Transport:
    if name == "smtp":
        from funnel.transports.smtp import SMTPTransport

        return SMTPTransport(config["SMTP_URL"], timeout=float(config["SMTP_TIMEOUT"]),
                             ca_file=config.get("SMTP_CA_FILE") or "")
    if name == "outbox":
        from funnel.transports.outbox import OutboxTransport

        return OutboxTransport(config["OUTBOX_DIR"])
    if name == "sendgrid":
        from funnel.transports.sendgrid import SendGridTransport

        return SendGridTransport(
            api_key=config["SENDGRID_API_KEY"],
            host=config["SENDGRID_API_HOST"],
            timeout=float(config["SENDGRID_TIMEOUT"]),
            sandbox=bool(config["SENDGRID_SANDBOX"]),
        )
    raise ValueError(f"MAIL_TRANSPORT must be 'outbox', 'sendgrid' or 'smtp', not {name!r}")
