"""Writes each email as an RFC 5322 ``.eml`` file: the default, for development."""

from __future__ import annotations

import contextlib
import os
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from funnel.transports import Message, SendResult, TransientSendError


def to_email_message(msg: Message) -> EmailMessage:
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


class OutboxTransport:
    idempotent = True
    max_batch = 500

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, key: str) -> Path:
        return self.directory / f"{key}.eml"

    def send(self, messages: list[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for msg in messages:
                self._write(self.path_for(msg.key), to_email_message(msg).as_bytes())
                results.append(SendResult(msg.key, True, provider_id=msg.message_id))
        except OSError as exc:
            # A full disk or a folder we may not write is the operator's to fix, and
            # the email must go out once it is fixed: temporary, recorded, retried.
            # The messages already written stay written (settled).
            raise TransientSendError(
                f"outbox {self.directory} cannot be written: {exc.strerror or exc}",
                results=results) from exc
        return results

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
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
