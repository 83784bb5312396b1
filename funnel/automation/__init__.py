"""Automation (issue 25): sequences started by tags or by finishing another, and
the coach's rules in ``emails/automations.yml``. The worker calls ``Automation``
once per pass, before the drip, so whatever it starts is sent in that pass."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from funnel.automation.rules import RulesReport, apply_rules
from funnel.automation.starts import start_sequences
from funnel.core.automations import FILE, Rule, RulesFileError, load_rules
from funnel.core.sequences import Sequences

log = logging.getLogger(__name__)


class Automation:
    def __init__(self, sessions: sessionmaker[Session], emails_dir: str) -> None:
        self.sessions = sessions
        self.emails_dir = emails_dir

        self._rules: tuple[float, tuple[Rule, ...]] | None = None

    def rules(self) -> tuple[Rule, ...]:
        """The rules file, read again when it changes; a broken file holds every rule
        (logged; ``emails check`` says where) rather than apply half of it."""
        path = Path(self.emails_dir, FILE)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return ()
        if self._rules is None or self._rules[0] != stamp:
            try:
                self._rules = (stamp, load_rules(self.emails_dir))
            except RulesFileError as exc:
                log.error("automations held: %s", exc)
                self._rules = (stamp, ())
        return self._rules[1]

    def __call__(self, sequences: Sequences, now: datetime, *, dry_run: bool = False
                 ) -> RulesReport:
        if not dry_run:
            # Rules first: what they tag or start this pass is entered below.
            report = apply_rules(self.sessions, self.rules(), sequences, now)
            with self.sessions() as s:
                started = start_sequences(s, sequences, now)
                s.commit()
            if any(started.values()):
                log.info("sequences started: %s", {k: v for k, v in started.items() if v})
            return report
        return apply_rules(self.sessions, self.rules(), sequences, now, dry_run=True)
