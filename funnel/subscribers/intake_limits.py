"""A bound on the sign-up intake while the worker is away.

The form writes each sign-up (address, IP, user agent) to ``signup_intake`` and the
worker takes it from there. With the worker down, rows pile up: personal data kept
with nobody processing it, and a table a flood can grow without limit. So the form
refuses new sign-ups (503, "try again later") once ``SIGNUP_INTAKE_MAX`` rows wait,
and says so in the log at ERROR, which the operator's alerting picks up. The count
is read at most every ``EVERY`` seconds per process, so a sign-up normally costs no
extra query. No Flask in here.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, func, select

from funnel.models import SignupIntake

log = logging.getLogger(__name__)
EVERY = 5.0  # seconds a process trusts the count it last read


class IntakeCap:
    def __init__(self, limit: int, every: float = EVERY) -> None:
        self.limit = limit
        self.every = every
        self._read: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def waiting(self, engine: Engine) -> int:
        """Rows in the intake, as last read (again when older than ``every``)."""
        with self._lock:
            read = self._read
            if read is not None and time.monotonic() - read[0] < self.every:
                return read[1]
        with engine.connect() as conn:
            count = int(conn.scalar(select(func.count()).select_from(SignupIntake)) or 0)
        with self._lock:
            self._read = (time.monotonic(), count)
        return count

    def full(self, engine: Engine) -> bool:
        if self.limit <= 0:
            return False
        count = self.waiting(engine)
        if count >= self.limit:
            log.error("sign-up intake holds %d rows (SIGNUP_INTAKE_MAX=%d): is the worker "
                      "running? New sign-ups are refused until it catches up", count, self.limit)
            return True
        return False
