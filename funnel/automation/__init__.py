"""Automation (issue 25): sequences started by tags or by finishing another, and
the coach's rules in ``emails/automations.yml``. The worker calls ``Automation``
once per pass, before the drip, so whatever it starts is sent in that pass."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from funnel.automation.starts import start_sequences
from funnel.core.sequences import Sequences

log = logging.getLogger(__name__)


class Automation:
    def __init__(self, sessions: sessionmaker[Session], emails_dir: str) -> None:
        self.sessions = sessions
        self.emails_dir = emails_dir

    def __call__(self, sequences: Sequences, now: datetime) -> dict[str, int]:
        with self.sessions() as s:
            started = start_sequences(s, sequences, now)
            s.commit()
        if any(started.values()):
            log.info("sequences started: %s", {k: v for k, v in started.items() if v})
        return started
