"""The worker's broadcast piece: claim due recipients, write intents, send.

Same three guarantees as the plan (README "Delivery guarantees"), on the
broadcast's own to-do list: a unique (subscriber, "broadcast", slug) delivery
committed as an intent before sending; a lease on each claimed recipient row;
and the subscriber and the recipient row re-read under lock right before the
shared send step (``funnel.mail.sending``) hands the email over, so an unsubscribe,
a pause or a cancel that commits first always wins.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, selectinload, sessionmaker

from funnel.core import lifecycle
from funnel.core.sequence import EmailSource
from funnel.db import claim, lease_free
from funnel.mail import sending
from funnel.mail.sending import BROADCAST, DONE_STATES, RETRY, SENDING, UNKNOWN, Outgoing
from funnel.models import (
    BROADCAST_CANCELLED,
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    OUTCOME_CANCELLED,
    OUTCOME_LEFT,
    OUTCOME_PAUSED,
    OUTCOME_SENT,
    Broadcast,
    BroadcastRecipient,
    Delivery,
    Subscriber,
    new_public_id,
)
from funnel.newsletter import subject_tests
from funnel.newsletter.scheduling import REASON, frozen_source, mark_finished
from funnel.transports import Message, Transport

log = logging.getLogger(__name__)

# A broadcast whose frozen copy cannot be rendered (it passed the check when it
# was scheduled, so this means a bug or a changed layout) is looked at again later.
RENDER_RECHECK = timedelta(minutes=5)


@dataclass
class BroadcastReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    decided: list[str] = field(default_factory=list)  # slugs whose subject test was decided


def delivery_key(d: Delivery) -> str:
    """Outbox file name and provider key: stable, so a resend replaces, never adds."""
    return f"{d.created_at:%Y%m%dT%H%M%S}-{d.step_slug}-{d.public_id}"


def why_not(sub: Subscriber, now: datetime) -> str | None:
    """The outcome for someone who must not get a broadcast now, else None."""
    if sub.status != lifecycle.CONFIRMED or not sub.wants_newsletter:
        return OUTCOME_LEFT
    if sub.paused_until is not None and sub.paused_until > now:
        return OUTCOME_PAUSED  # the pause means no email: not kept for later
    return None


class BroadcastWork:
    """One piece of a worker pass: ``run(now)`` sends every due broadcast recipient."""

    def __init__(self, sessions: sessionmaker[Session], composer, transport: Transport, *,
                 owner: str, emails_dir: str, batch_size: int = 200,
                 lease_seconds: int = 300, max_attempts: int = sending.MAX_ATTEMPTS,
                 allowance: Callable[[datetime], int | None] | None = None,
                 default_timezone: str = "UTC",
                 between_batches: Callable[[], None] | None = None) -> None:
        self.sessions = sessions
        self.composer = composer
        self.transport = transport
        self.owner = owner[-64:]
        self.emails_dir = emails_dir
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
        self._sources: dict[tuple[int, str, int | None], EmailSource] = {}

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
            self.process(ids, now, report)
            if self.between_batches is not None:
                self.between_batches()
        return report

    # -- claiming ------------------------------------------------------------

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

    def _load(self, s: Session, ids: list[int], *, lock: bool) -> list[BroadcastRecipient]:
        # The subscriber is joined by name (not an alias) so its row can be locked too.
        q = (select(BroadcastRecipient).where(BroadcastRecipient.id.in_(ids))
             .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
             .options(contains_eager(BroadcastRecipient.subscriber),
                      # One query for the batch's broadcasts (usually one): joined, the
                      # issue's whole text would come back once per recipient row.
                      selectinload(BroadcastRecipient.broadcast))
             .order_by(BroadcastRecipient.subscriber_id))
        if lock and s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(of=(BroadcastRecipient, Subscriber))
        return list(s.scalars(q).unique())

    @staticmethod
    def _settle(rec: BroadcastRecipient, outcome: str) -> None:
        rec.outcome, rec.due_at, rec.lease_until = outcome, None, None

    # -- one batch -----------------------------------------------------------

    def process(self, ids: list[int], now: datetime, report: BroadcastReport) -> None:
        intents: dict[int, Delivery] = {}
        with self.sessions() as s:
            recs = self._load(s, ids, lock=False)
            existing = {(d.subscriber_id, d.step_slug): d for d in s.scalars(
                select(Delivery).where(
                    Delivery.kind == BROADCAST,
                    Delivery.subscriber_id.in_([r.subscriber_id for r in recs]),
                    Delivery.step_slug.in_({r.broadcast.slug for r in recs})))}
            for rec in recs:
                if rec.outcome is not None or rec.lease_owner != self.owner:
                    continue
                row, sub = rec.broadcast, rec.subscriber
                if row.status == BROADCAST_CANCELLED:
                    self._settle(rec, OUTCOME_CANCELLED)
                    continue
                if row.status == BROADCAST_SCHEDULED:
                    row.status, row.started_at = BROADCAST_SENDING, row.started_at or now
                d = existing.get((sub.id, row.slug))
                if d is not None and d.state in DONE_STATES:
                    self._settle(rec, OUTCOME_SENT)  # reached already (an earlier run)
                    continue
                outcome = why_not(sub, now)
                if outcome is not None:
                    if d is not None:
                        s.delete(d)  # an unsent retry: withdrawn, nothing went out
                    self._settle(rec, outcome)
                    report.skipped += 1
                    continue
                if d is not None and d.state == SENDING and not self.transport.idempotent:
                    # A worker died mid-send; the provider may have it. Not resending
                    # is the only way to be sure it never arrives twice.
                    d.state, d.sent_at, d.retry_at = UNKNOWN, now, None
                    d.error = "worker stopped mid-send; not resent so it cannot arrive twice"
                    self._settle(rec, OUTCOME_SENT)
                    continue
                if d is None:
                    d = Delivery(public_id=new_public_id(), kind=BROADCAST, step_slug=row.slug,
                                 subscriber_id=sub.id, attempts=0, created_at=now)
                    s.add(d)
                d.state = SENDING
                d.attempts += 1
                intents[rec.id] = d
            try:
                s.commit()  # the intents are durable before anything is sent
            except IntegrityError:
                # The unique delivery is the last line of defence: leave the batch to
                # its leases and look again later, never send twice.
                log.error("a broadcast delivery already existed in this batch; left to its lease")
                return
            touched = {r.broadcast_id for r in recs}
        if intents:
            self._send(intents, now, report)
        with self.sessions() as s:
            for row_id in touched:
                mark_finished(s, row_id, now)
            s.commit()

    def _source(self, row: Broadcast, variant: int | None = None) -> EmailSource:
        """The issue's frozen copy, with the reader's subject in a subject test."""
        key = (row.id, row.source, variant)
        src = self._sources.get(key)
        if src is None:
            src = frozen_source(row, self.emails_dir)
            if variant is not None:
                # The reader's subject in a subject test, fixed on their row before sending.
                subject = subject_tests.subjects_of(row)[variant]
                src = dataclasses.replace(src, meta={**src.meta, "subject": subject})
            self._sources[key] = src
        return src

    def _render(self, rec: BroadcastRecipient, d: Delivery, now: datetime) -> Message:
        row = rec.broadcast
        return self.composer.message(self._source(row, rec.variant), rec.subscriber,
                                     key=delivery_key(d), now=now, delivery_id=d.public_id,
                                     category=row.slug,
                                     extra={"reason": REASON})

    def _render_all(self, pairs: list[tuple[BroadcastRecipient, Delivery]], now: datetime
                    ) -> list[Message | Exception]:
        """``_render`` for a batch: the recipients of one issue are composed together
        (``Composer.messages``), so what they share (the files, the layout, the shared
        body's template) is worked out once, as the plan's step does. Each email is
        the one ``_render`` gives; one that cannot be made is its exception."""
        out: list[Message | Exception] = [ValueError("not rendered")] * len(pairs)
        # One group per issue and subject: a subject test's readers differ only there.
        groups: dict[tuple[int, int | None], list[int]] = {}
        for i, (rec, _d) in enumerate(pairs):
            groups.setdefault((rec.broadcast.id, rec.variant), []).append(i)
        for (_issue, variant), places in groups.items():
            row = pairs[places[0]][0].broadcast
            try:
                src = self._source(row, variant)
            except Exception as exc:  # noqa: BLE001  (the frozen copy is broken: all held)
                for i in places:
                    out[i] = exc
                continue
            made = self.composer.messages(
                src, [(pairs[i][0].subscriber, delivery_key(pairs[i][1]), pairs[i][1].public_id)
                      for i in places],
                now=now, category=row.slug, extra={"reason": REASON})
            for i, msg in zip(places, made, strict=True):
                out[i] = msg
        return out

    def _send(self, intents: dict[int, Delivery], now: datetime, report: BroadcastReport) -> None:
        why: dict[int, str] = {}

        def hold(rec: BroadcastRecipient, _d: Delivery) -> bool:
            if rec.outcome is not None or rec.broadcast.status == BROADCAST_CANCELLED:
                why[rec.id] = OUTCOME_CANCELLED
            elif (outcome := why_not(rec.subscriber, now)) is not None:
                why[rec.id] = outcome
            return rec.id in why

        def after(rec: BroadcastRecipient, d: Delivery | None) -> None:
            if d is None:
                self._settle(rec, why.get(rec.id, OUTCOME_LEFT))
                report.skipped += 1
            elif d.state == RETRY:
                rec.due_at, rec.lease_until = d.retry_at, None
            else:
                self._settle(rec, OUTCOME_SENT)

        with self.sessions() as s:
            # The row locks make a concurrent unsubscribe or cancel wait for us or win.
            items: list[Outgoing] = []
            recs = self._load(s, list(intents), lock=True)
            # The intents, read back in one query (not one per recipient).
            wanted = [intents[r.id].id for r in recs]
            rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(wanted)))}
            pairs: list[tuple[BroadcastRecipient, Delivery]] = []
            for rec in recs:
                if rec.lease_owner != self.owner:
                    continue  # our lease ran out and another worker took over
                d = rows.get(intents[rec.id].id)
                if d is None or d.state != SENDING:
                    continue
                pairs.append((rec, d))
            for (rec, d), msg in zip(pairs, self._render_all(pairs, now), strict=True):
                if isinstance(msg, Exception):  # never stop the batch
                    log.error("broadcast %s could not be rendered: %s", rec.broadcast.slug, msg,
                              exc_info=msg)
                    d.state, d.error = sending.HELD, f"could not be rendered: {msg}"[:2000]
                    d.attempts -= 1
                    rec.due_at, rec.lease_until = now + RENDER_RECHECK, None
                    continue
                items.append(Outgoing(rec, d, msg))
            r = sending.send(s, self.transport, items, now=now, hold=hold, after=after,
                             max_attempts=self.max_attempts)
        report.sent += r.sent
        report.failed += r.failed
        report.retried += r.retried
