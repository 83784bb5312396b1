"""The worker's loop: every pass runs each piece in order; between passes it waits
for work (or a wake-up), and backs off while the database is away."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

from funnel.transports import AuthError
from funnel.worker.pieces import Every, Step
from funnel.worker.report import PassReport

log = logging.getLogger(__name__)


class Worker:
    """Runs ``pieces`` in order, each with the pass's ``now``. A piece marked
    ``guarded`` that fails is logged and the pass goes on (the sign-up intake: mail
    already queued goes out whatever its trouble); any other failure ends the pass,
    which the loop retries."""

    def __init__(self, pieces: Sequence[Step | Every], clock: Callable[[], datetime], *,
                 name: str, guarded: frozenset[str] = frozenset(),
                 on_stop: Sequence[Callable[[], None]] = ()) -> None:
        self.pieces = tuple(pieces)
        self.clock = clock
        self.name = name  # who holds the leases (host:pid:random), as operators see it
        self.guarded = guarded
        # Called when the worker is told to stop: cut work in flight that would
        # otherwise outlast the stop (a webhook endpoint that hangs).
        self.on_stop = tuple(on_stop)

    def stopping(self) -> None:
        """Told to stop (SIGTERM): safe to call from a signal handler."""
        for cut in self.on_stop:
            cut()

    def run_pass(self, now: datetime | None = None, stop: threading.Event | None = None, *,
                 drip: bool = True) -> PassReport:
        """Do everything due at ``now`` (default: the clock), then return.
        ``drip=False`` runs only the urgent pieces: sign-ups in, their
        confirmations out."""
        now = now or self.clock()
        report = PassReport()
        for piece in self.pieces:
            if stop is not None and stop.is_set():
                break
            if not drip and not piece.urgent:
                continue
            try:
                report.add(piece(now, stop))
            except AuthError:
                raise
            except Exception:
                if piece.name not in self.guarded:
                    raise
                log.exception("%s failed; the pass goes on", piece.name)
        return report

    def run_forever(self, stop: threading.Event, poll_seconds: float,
                    wake: threading.Event | None = None,
                    heartbeat: Callable[[], object] | None = None) -> None:
        failures = 0
        while not stop.is_set():
            if heartbeat is not None:
                heartbeat()  # cheap: writes at most every few seconds, never raises
            try:
                report = self.run_pass(None, stop)
                failures = 0
            except AuthError:
                raise
            except Exception as exc:
                # Usually the database being away: back off (1 s doubling to 5 s)
                # so a returning database is used within seconds, without a log flood.
                failures += 1
                wait = min(2.0 ** (failures - 1), 5.0)
                if failures == 1:
                    log.exception("worker pass failed; trying again in %.0f s", wait)
                else:
                    log.warning("worker pass failed again (%s); trying again in %.0f s",
                                str(exc).splitlines()[0][:200], wait)
                stop.wait(wait)
                continue
            if not report.busy:
                waiter = wake or stop
                waiter.wait(poll_seconds)
                if wake is not None:
                    wake.clear()
