"""What a worker does after each drip pass, besides the drip: browser imports,
opt-in emails for pending imports, and failure alerts to the admins.

Each chore is independent and guarded: one failing is logged and never stops
the worker or the others. None of them runs in a web request.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from funnel.config import Settings
from funnel.control import alerts, mail_state
from funnel.importing import import_jobs
from funnel.transports import AuthError, Transport

log = logging.getLogger(__name__)


def after_pass(sessions: sessionmaker[Session], settings: Settings, transport: Transport,
               now: datetime) -> None:
    chores = (
        # First: SMTP taking over (or handing back) is saved for the others to see.
        ("mail fallback state", lambda: mail_state.sync(sessions, transport)),
        ("import", lambda: import_jobs.run_pending(sessions, settings, now)),
        # Queued as system mail: the worker's next pass sends them.
        ("opt-in emails", lambda: import_jobs.send_optins(sessions, settings, now)),
        ("failure alert", lambda: alerts.send_if_due(sessions, settings, transport, now)),
    )
    for name, chore in chores:
        try:
            chore()
        except AuthError:
            raise
        except Exception:
            log.exception("%s failed; trying again after the next pass", name)
