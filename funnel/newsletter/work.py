"""The worker's broadcast piece: claim due recipients, write intents, send.

Same three guarantees as the plan (README "Delivery guarantees"), on the
broadcast's own to-do list: a unique (subscriber, "broadcast", slug) delivery
committed as an intent before sending; a lease on each claimed recipient row;
and the subscriber and the recipient row re-read under lock right before the
shared send step (``funnel.mail.sending``) hands the email over, so an unsubscribe,
a pause or a cancel that commits first always wins.

A batch is read and written as plain rows (``row_batch``), or with ``fast=False``
(FAST_NEWSLETTER=0) as ORM objects (``plain_batch``); both do the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from funnel.db import claim, lease_free
from funnel.drip.batches import collector_paused
from funnel.mail import sending
from funnel.models import BROADCAST_SCHEDULED, BROADCAST_SENDING, Broadcast, BroadcastRecipient
from funnel.newsletter import subject_tests
from funnel.newsletter.outgoing import BroadcastReport, Issues
from funnel.newsletter.plain_batch import PlainBatch
from funnel.newsletter.row_batch import RowBatch
from funnel.transports import Transport

__all__ = ["BroadcastReport", "BroadcastWork"]


class BroadcastWork:
    """One piece of a worker pass: ``run(now)`` sends every due broadcast recipient."""

    def __init__(self, sessions: sessionmaker[Session], composer, transport: Transport, *,
                 owner: str, emails_dir: str, batch_size: int = 200,
                 lease_seconds: int = 300, max_attempts: int = sending.MAX_ATTEMPTS,
                 allowance: Callable[[datetime], int | None] | None = None,
                 default_timezone: str = "UTC", fast: bool = True,
                 clock: Callable[[], datetime] | None = None,
                 between_batches: Callable[[], None] | None = None) -> None:
        self.sessions = sessions
        self.transport = transport
        self.owner = owner[-64:]
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        # How many may go now (the brakes and the warm-up, funnel/control/brakes.py):
        # asked before every batch, so a pause stops a newsletter mid-send.
        self.allowance = allowance
        self.default_timezone = default_timezone
        # Called after each batch (the worker folds the tallies there, at most every
        # few seconds): an issue to a million readers is one long pass.
        self.between_batches = between_batches
        self.issues = Issues(composer, emails_dir)
        # The time the webhook events are stamped with (the app's, as for every event).
        self.clock = clock or (lambda: datetime.now(UTC))
        self.batch = RowBatch(self) if fast else PlainBatch(self)

    def run(self, now: datetime, stop=None) -> BroadcastReport:
        report = BroadcastReport()
        # A subject test whose wait is over picks its winner and makes the rest due,
        # so they are claimed in this same pass.
        with self.sessions() as s:
            report.decided = subject_tests.decide(s, now, self.default_timezone)
        started = time.monotonic()
        while not (stop and stop.is_set()):
            held_at = now + timedelta(seconds=time.monotonic() - started)
            allowed = self.allowance(held_at) if self.allowance else None
            if allowed is not None and allowed <= 0:
                break
            ids = self.claim(now, held_at, limit=min(self.batch_size, allowed or self.batch_size))
            if not ids:
                break
            report.claimed += len(ids)
            with collector_paused():
                self.batch.process(ids, now, report)
            if self.between_batches is not None:
                self.between_batches()
        return report

    def claim(self, now: datetime, held_at: datetime, limit: int | None = None) -> list[int]:
        live = select(Broadcast.id).where(
            Broadcast.id == BroadcastRecipient.broadcast_id,
            Broadcast.status.in_((BROADCAST_SCHEDULED, BROADCAST_SENDING))).exists()
        with self.sessions() as s:
            q = (select(BroadcastRecipient.id)
                 .where(BroadcastRecipient.due_at <= now, live,
                        lease_free(BroadcastRecipient.lease_until, held_at))
                 .order_by(BroadcastRecipient.due_at, BroadcastRecipient.id)
                 .limit(limit or self.batch_size))
            return claim(s, q, BroadcastRecipient,
                         lease_until=held_at + self.lease, lease_owner=self.owner)
