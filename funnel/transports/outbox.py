"""Writes each email as an RFC 5322 ``.eml`` file: the default, for development.

The bytes are assembled directly (``eml_bytes``): Python's ``email`` package took
85% of a worker pass into the outbox, most of it parsing back and refolding the
headers it had just been given. The encoding itself still comes from the
standard library (RFC 2047 words from ``email.header``, addresses from
``email.utils``, quoted-printable and base64 from ``binascii``), and a message
the direct path is not sure about (a non-ASCII address, an over-long line in a
header) goes through ``email`` as before (``to_email_message``).
tests/test_outbox_writer.py parses what both write and compares them.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.header import Header
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

from funnel.transports import Message, SendResult, TransientSendError

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322's "should"; 998 is the "must"
ADDRESS_HEADERS = frozenset({"from", "to", "reply-to", "cc", "sender"})
WRITERS = 16  # files written and fsynced at once


def to_email_message(msg: Message) -> EmailMessage:
    """The email built by Python's ``email`` package (the reference for eml_bytes)."""
    em = EmailMessage(policy=SMTP)
    em["From"] = msg.sender
    em["To"] = msg.to
    if msg.reply_to:
        em["Reply-To"] = msg.reply_to
    em["Subject"] = msg.subject
    em["Date"] = format_datetime(msg.date)
    em["Message-ID"] = msg.message_id
    for name, value in msg.headers.items():
        em[name] = value
    em.set_content(msg.text)
    em.add_alternative(msg.html, subtype="html")
    return em


def eml_bytes(msg: Message) -> bytes:
    """The message as the bytes of an ``.eml`` file (CRLF line ends)."""
    fields = [("From", msg.sender), ("To", msg.to)]
    if msg.reply_to:
        fields.append(("Reply-To", msg.reply_to))
    fields += [("Subject", msg.subject), ("Date", _date(msg.date)),
               ("Message-ID", msg.message_id), *msg.headers.items()]
    head = []
    for name, value in fields:
        # A batch has one sender, Reply-To and date: each header line is made once.
        line = _SAME.get((name, value), _MISSING) if name in _REPEATED else _MISSING
        if line is _MISSING:
            line = _header(name, value)
            if name in _REPEATED:
                if len(_SAME) > 64:
                    _SAME.clear()
                _SAME[(name, value)] = line
        if line is None:
            return to_email_message(msg).as_bytes()  # the careful path, or its error
        head.append(line)
    text_cte, text = _body(msg.text)
    html_cte, html = _body(msg.html)
    boundary = "=_" + secrets.token_hex(16)  # "=_" never occurs in quoted-printable
    while boundary in text or boundary in html:  # pragma: no cover  (2**-128)
        boundary = "=_" + secrets.token_hex(16)
    out = [
        *head,
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        f"Content-Transfer-Encoding: {text_cte}",
        "",
        text,  # its last CRLF ends the text; the one before the delimiter is the delimiter's
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        f"Content-Transfer-Encoding: {html_cte}",
        "",
        html,
        f"--{boundary}--",
        "",
    ]
    return CRLF.join(out).encode("ascii")


_REPEATED = frozenset({"From", "Reply-To", "List-Unsubscribe-Post", "List-Id"})
_SAME: dict[tuple[str, str], str | None] = {}
_MISSING: Any = object()
_DATES: dict[datetime, str] = {}


def _date(when: datetime) -> str:
    text = _DATES.get(when)
    if text is None:
        if len(_DATES) > 64:
            _DATES.clear()
        text = _DATES[when] = format_datetime(when)
    return text


def _header(name: str, value: str) -> str | None:
    """One header field, folded; None when the direct path should not write it."""
    if "\r" in value or "\n" in value or "\0" in value:
        return None  # header injection: the email package refuses it with an error
    if name.lower() in ADDRESS_HEADERS:
        display, address = parseaddr(value)
        if not address or not address.isascii() or "@" not in address:
            return None
        value = formataddr((display, address), charset="utf-8")
        if not value.isascii():  # pragma: no cover  (formataddr encodes the name)
            return None
    elif not value.isascii():
        value = Header(value, "utf-8", header_name=name).encode(linesep=CRLF)
        return f"{name}: {value}"
    line = f"{name}: {value}"
    if len(line) <= MAX_LINE:
        return line
    return _fold(line)


def _fold(line: str) -> str | None:
    """Fold an ASCII header at spaces; a run no space can break stays long, up to
    RFC 5322's hard limit of 998 characters (a long link in List-Unsubscribe)."""
    lines: list[str] = []
    name, _, rest = line.partition(" ")
    current = ""
    for word in rest.split(" "):
        if not current:
            current = f"{name} {word}"  # never a break right after the colon
        elif len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
    lines.append(current)
    if any(len(piece) > 998 for piece in lines) or any(not p.strip() for p in lines):
        return None
    return CRLF.join(lines)


def _body(content: str) -> tuple[str, str]:
    """(transfer encoding, encoded body ending in CRLF): 7bit when it can be,
    else quoted-printable (mostly-English text stays readable) or base64,
    whichever is shorter, as the ``email`` package decides."""
    # Line ends as the email package reads them (CR, LF or CRLF), written as CRLF.
    lines = content.encode("utf-8").splitlines()
    raw = b"\r\n".join(lines) + b"\r\n"
    if raw.isascii() and all(len(x) <= 998 for x in lines):
        return "7bit", raw.decode("ascii")
    qp = binascii.b2a_qp(raw, istext=True)
    b64 = binascii.b2a_base64(raw, newline=False)
    if len(qp) <= len(b64) * 1.05:
        return "quoted-printable", _crlf_qp(qp)
    b64_lines = [b64[i:i + 76] for i in range(0, len(b64), 76)]
    return "base64", CRLF.join(x.decode("ascii") for x in b64_lines) + CRLF


def _crlf_qp(qp: bytes) -> str:
    """binascii keeps the input's CRLF line ends but writes its soft breaks as
    "=\\n"; an .eml has CRLF throughout."""
    text = qp.decode("ascii").replace("\r\n", "\n").replace("\n", CRLF)
    return text if text.endswith(CRLF) else text + CRLF


class OutboxTransport:
    idempotent = True
    max_batch = 500

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._writers: ThreadPoolExecutor | None = None

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key}.eml"

    def send(self, messages: list[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files = [(msg, eml_bytes(msg)) for msg in messages]  # raises before writing
            try:
                # Each file is fsynced before its rename, as before, but many at a
                # time: the file system commits concurrent fsyncs together (one at
                # a time capped the outbox at the disk's ~300 flushes a second).
                writes = [(msg, self._pool().submit(self._write, self.path_for(msg.key), data))
                          for msg, data in files]
                failed: OSError | None = None
                for msg, done in writes:
                    try:
                        done.result()
                    except OSError as exc:
                        failed = failed or exc
                        continue
                    results.append(SendResult(msg.key, True, provider_id=msg.message_id))
                if failed is not None:
                    raise failed
            finally:
                if results:
                    # One fsync of the folder makes every rename of the batch durable;
                    # nothing is reported sent before it.
                    _fsync_dir(self.directory)
        except OSError as exc:
            # A full disk or a folder we may not write is the operator's to fix, and
            # the email must go out once it is fixed: temporary, recorded, retried.
            # The messages already written stay written (settled).
            raise TransientSendError(
                f"outbox {self.directory} cannot be written: {exc.strerror or exc}",
                results=results) from exc
        return results

    def _pool(self) -> ThreadPoolExecutor:
        if self._writers is None:
            self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="outbox")
        return self._writers

    def _write(self, path: Path, data: bytes) -> None:
        # Write then rename: a reader never sees half a file, and sending the same
        # key again replaces the file instead of adding a second email. fsync
        # first, so after a crash the name never points at an empty file.
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _fsync_dir(directory: Path) -> None:
    """Make the renames themselves durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
