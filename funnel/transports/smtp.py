"""Plain SMTP (``MAIL_TRANSPORT=smtp``, ``SMTP_URL``): Postmark, SES, Mailgun, Postfix.

``smtp://user:password@host:587`` upgrades with STARTTLS (refusing to log in over a
connection the server would not encrypt); ``smtps://…:465`` speaks TLS from the first
byte. One connection is opened on first use and reused for every message after it,
checked with a NOOP before each batch and opened again when the server has closed it.

Each message is its own MAIL FROM / RCPT TO / DATA, so the server's answer is per
recipient:

- 2xx after DATA: sent (the server's queue id, when it names one, is the provider id);
- 5xx to RCPT, MAIL or DATA: that message failed for good, the batch goes on;
- 4xx, or a connection lost before the message's data was handed over: nothing of
  it was accepted, so it and the rest of the batch are retried later
  (TransientSendError carrying what was already settled);
- a connection lost after the data went out, before the server answered: the
  server may have queued it. That message is reported ``unknown`` and never sent
  again (nothing twice); the rest of the batch is retried;
- 530/534/535 (authentication): AuthError, the worker stops.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from email.utils import parseaddr
from urllib.parse import unquote, urlsplit

from funnel.config import ConfigError
from funnel.transports import AuthError, Message, SendResult, TransientSendError
from funnel.transports.outbox import eml_bytes

log = logging.getLogger(__name__)

AUTH_CODES = {530, 534, 535, 538}
# Where servers name their queue id: Postfix "queued as X", SES/Postmark "Ok X".
_QUEUE_IDS = (re.compile(r"queued as\s+<?([\w.@-]+)", re.I), re.compile(r"\bid=<?([\w.@-]+)", re.I),
              re.compile(r"^(?:2\.0\.0\s+)?Ok:?\s+<?([\w.@-]{8,})>?\s*$", re.I))


class _DataSent(Exception):
    """The connection broke after a message's data went out: it may have been queued."""


class SMTPTransport:
    # SMTP has no idempotency key: a message whose DATA was cut off may be queued.
    idempotent = False
    max_batch = 100

    def __init__(self, url: str, timeout: float = 30.0, ca_file: str = "") -> None:
        if not url:
            raise ConfigError("SMTP_URL must be set when MAIL_TRANSPORT=smtp (or MAIL_FALLBACK=smtp), "
                              "e.g. smtp://user:password@smtp.example.com:587.")
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError("SMTP_URL must look like smtp://user:password@host:587 (STARTTLS) "
                              "or smtps://user:password@host:465 (TLS).")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        try:
            self.port = parts.port or (465 if self.implicit_tls else 587)
        except ValueError as exc:
            raise ConfigError(f"SMTP_URL has a bad port: {exc}") from exc
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file or None)
        self._conn: smtplib.SMTP | None = None
        self.connections = 0  # opened so far (the tests check that one is reused)

    def __repr__(self) -> str:  # never the password
        return f"SMTPTransport({'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port})"

    # -- the connection ------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        holder: list[smtplib.SMTP] = []
        try:
            conn = self._checked_open(holder)
        except BaseException:
            if holder:
                holder[0].close()  # a failed start-up leaves no socket behind
            raise
        self.connections += 1
        log.info("connected to %r", self)
        return conn

    def _checked_open(self, holder: list[smtplib.SMTP]) -> smtplib.SMTP:
        """_open with smtplib's errors turned into the Transport's."""
        try:
            return self._open(holder)
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthError(f"the SMTP server refused our credentials: {_reply(exc)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise AuthError(f"SMTP_URL has a login but {self!r} offers none: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code in AUTH_CODES:
                raise AuthError(f"the SMTP server refused our credentials: {_reply(exc)}") from exc
            raise TransientSendError(f"SMTP server {self.host}:{self.port} answered "
                                     f"{_reply(exc)}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"SMTP server {self.host}:{self.port} unreachable: "
                                     f"{exc!r}") from exc

    def _open(self, holder: list[smtplib.SMTP]) -> smtplib.SMTP:
        conn: smtplib.SMTP
        if self.implicit_tls:
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=self.context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        holder.append(conn)
        conn.ehlo()
        if not self.implicit_tls:
            if conn.has_extn("starttls"):
                conn.starttls(context=self.context)
                conn.ehlo()
            elif self.username:
                conn.quit()
                raise AuthError(f"{self!r} does not offer STARTTLS; the password is not "
                                "sent in the clear (use smtps:// or a server with TLS)")
        if self.username:
            conn.login(self.username, self.password)
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                if self._conn.noop()[0] == 250:
                    return self._conn
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:  # pragma: no cover  (closing a dead socket)
                pass
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()

    # -- the Transport interface -------------------------------------------

    def send(self, messages: list[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            conn = self._connection()
            for msg in messages:
                results.append(self._send_one(conn, msg))
        except _DataSent as exc:
            self._drop()
            key = str(exc.args[0])
            results.append(SendResult(key, False, unknown=True,
                                      error="the SMTP connection broke after the message was "
                                            "handed over, before the server answered; not "
                                            "resent so it cannot arrive twice"))
            raise TransientSendError(f"SMTP connection lost: {exc.args[1]}",
                                     results=results) from exc
        except (TransientSendError, AuthError) as exc:
            if not isinstance(exc, AuthError) or self._conn is not None:
                self._drop()
            exc.results = list(results)
            raise
        return results

    def _send_one(self, conn: smtplib.SMTP, msg: Message) -> SendResult:
        sender = parseaddr(msg.sender)[1]
        data = eml_bytes(msg)
        handed_over = False
        try:
            code, text = conn.mail(sender)
            if code == 250:
                code, text = conn.rcpt(msg.to)
            if code in (250, 251):
                code, text = conn.docmd("DATA")
                if code == 354:
                    # From here the server holds the message: a lost answer is "unknown".
                    handed_over = True
                    conn.send(_dot_stuffed(data))
                    code, text = conn.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            if handed_over:
                raise _DataSent(msg.key, repr(exc)) from exc
            raise TransientSendError(f"SMTP connection lost: {exc!r}") from exc
        answer = f"{code} {text.decode('utf-8', 'replace').strip()}"
        if code == 250:
            return SendResult(msg.key, True, provider_id=_queue_id(text) or msg.message_id)
        self._reset(conn)
        if code in AUTH_CODES:
            raise AuthError(f"the SMTP server refused our credentials: {answer}")
        if code == 421 or 400 <= code < 500:
            raise TransientSendError(f"SMTP server answered {answer}")
        log.warning("SMTP server refused a message: %s", answer)
        return SendResult(msg.key, False, error=f"SMTP server refused it: {answer}")

    @staticmethod
    def _reset(conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (OSError, smtplib.SMTPException):
            pass


def _queue_id(text: bytes) -> str | None:
    answer = text.decode("utf-8", "replace").strip()
    for pattern in _QUEUE_IDS:
        m = pattern.search(answer)
        if m:
            return m.group(1)[:200]
    return None


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA sends it: lines starting with "." doubled, ending in CRLF.CRLF."""
    body = re.sub(rb"(?m)^\.", b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
        else str(exc.smtp_error)
    return f"{exc.smtp_code} {text.strip()}"

