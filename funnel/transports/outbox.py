"""Writes each email as an RFC 5322 ``.eml`` file: the default, for development."""

from __future__ import annotations

import os
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from funnel.transports import Message, SendResult


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
        self.directory.mkdir(parents=True, exist_ok=True)
        results = []
        for msg in messages:
            data = to_email_message(msg).as_bytes()
            # Write then rename: a reader never sees half a file, and sending the
            # same key again replaces the file instead of adding a second email.
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path_for(msg.key))
            results.append(SendResult(msg.key, True, provider_id=msg.message_id))
        return results
