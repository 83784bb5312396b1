"""A newsletter batch through the ORM, one object per reader: the plain path,
kept behind ``FAST_NEWSLETTER=0`` to rule the row path (``row_batch``) out when
something looks wrong. Both write the same rows and send the same emails
(tests/newsletter/test_newsletter_paths_equal.py)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, selectinload

from funnel.mail import sending
from funnel.mail.sending import BROADCAST, DONE_STATES, RETRY, SENDING, UNKNOWN, Outgoing
from funnel.models import (
    BROADCAST_CANCELLED,
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    OUTCOME_CANCELLED,
    OUTCOME_SENT,
    BroadcastRecipient,
    Delivery,
    Subscriber,
    new_public_id,
)
from funnel.newsletter.outgoing import (
    RENDER_RECHECK,
    BroadcastReport,
    finish_issues,
    settle,
    why_not,
)

if TYPE_CHECKING:
    from funnel.newsletter.work import BroadcastWork

log = logging.getLogger(__name__)


class PlainBatch:
    def __init__(self, work: BroadcastWork) -> None:
        self.work = work

    def _load(self, s: Session, ids: list[int], *, lock: bool) -> list[BroadcastRecipient]:
        # The subscriber is joined by name (not an alias) so its row can be locked too.
        q = (select(BroadcastRecipient).where(BroadcastRecipient.id.in_(ids))
             .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
             .options(contains_eager(BroadcastRecipient.subscriber),
                      # One query for the batch's broadcasts (usually one): joined, the
                      # issue's whole text would come back once per recipient row.
                      selectinload(BroadcastRecipient.broadcast))
             .order_by(BroadcastRecipient.subscriber_id, BroadcastRecipient.id))
        if lock and s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update(of=(BroadcastRecipient, Subscriber))
        return list(s.scalars(q).unique())

    def process(self, ids: list[int], now: datetime, report: BroadcastReport) -> None:
        work = self.work
        intents: dict[int, Delivery] = {}
        with work.sessions() as s:
            recs = self._load(s, ids, lock=False)
            existing = {(d.subscriber_id, d.step_slug): d for d in s.scalars(
                select(Delivery).where(
                    Delivery.kind == BROADCAST,
                    Delivery.subscriber_id.in_([r.subscriber_id for r in recs]),
                    Delivery.step_slug.in_({r.broadcast.slug for r in recs})))}
            for rec in recs:
                if rec.outcome is not None or rec.lease_owner != work.owner:
                    continue
                row, sub = rec.broadcast, rec.subscriber
                if row.status == BROADCAST_CANCELLED:
                    settle(rec, OUTCOME_CANCELLED)
                    continue
                if row.status == BROADCAST_SCHEDULED:
                    row.status, row.started_at = BROADCAST_SENDING, row.started_at or now
                d = existing.get((sub.id, row.slug))
                if d is not None and d.state in DONE_STATES:
                    settle(rec, OUTCOME_SENT)  # reached already (an earlier run)
                    continue
                outcome = why_not(sub, now)
                if outcome is not None:
                    if d is not None:
                        s.delete(d)  # an unsent retry: withdrawn, nothing went out
                    settle(rec, outcome)
                    report.skipped += 1
                    continue
                if d is not None and d.state == SENDING and not work.transport.idempotent:
                    # A worker died mid-send; the provider may have it. Not resending
                    # is the only way to be sure it never arrives twice.
                    d.state, d.sent_at, d.retry_at = UNKNOWN, now, None
                    d.error = "worker stopped mid-send; not resent so it cannot arrive twice"
                    settle(rec, OUTCOME_SENT)
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
        finish_issues(work.sessions, touched, now)

    def _send(self, intents: dict[int, Delivery], now: datetime, report: BroadcastReport) -> None:
        work = self.work
        why: dict[int, str] = {}

        def hold(rec: BroadcastRecipient, _d: Delivery) -> bool:
            if rec.outcome is not None or rec.broadcast.status == BROADCAST_CANCELLED:
                why[rec.id] = OUTCOME_CANCELLED
            elif (outcome := why_not(rec.subscriber, now)) is not None:
                why[rec.id] = outcome
            return rec.id in why

        def after(rec: BroadcastRecipient, d: Delivery | None) -> None:
            if d is None and rec.id in why:
                settle(rec, why[rec.id])
                report.skipped += 1
            elif d is None:
                # Withdrawn unsent (the provider refused our credentials): still due,
                # for the next pass once the key is fixed.
                rec.lease_until = None
            elif d.state == RETRY:
                rec.due_at, rec.lease_until = d.retry_at, None
            else:
                settle(rec, OUTCOME_SENT)

        with work.sessions() as s:
            # The row locks make a concurrent unsubscribe or cancel wait for us or win.
            items: list[Outgoing] = []
            recs = self._load(s, list(intents), lock=True)
            # The intents, read back in one query (not one per recipient).
            wanted = [intents[r.id].id for r in recs]
            rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(wanted)))}
            pairs: list[tuple[BroadcastRecipient, Delivery]] = []
            for rec in recs:
                if rec.lease_owner != work.owner:
                    continue  # our lease ran out and another worker took over
                d = rows.get(intents[rec.id].id)
                if d is None or d.state != SENDING:
                    continue
                pairs.append((rec, d))
            made = work.issues.render([(rec.broadcast, rec.variant, rec.subscriber, d)
                                       for rec, d in pairs], now)
            for (rec, d), msg in zip(pairs, made, strict=True):
                if isinstance(msg, Exception):  # never stop the batch
                    log.error("broadcast %s could not be rendered: %s", rec.broadcast.slug, msg,
                              exc_info=msg)
                    d.state, d.error = sending.HELD, f"could not be rendered: {msg}"[:2000]
                    d.attempts -= 1
                    rec.due_at, rec.lease_until = now + RENDER_RECHECK, None
                    continue
                items.append(Outgoing(rec, d, msg))
            r = sending.send(s, work.transport, items, now=now, hold=hold, after=after,
                             max_attempts=work.max_attempts)
        report.sent += r.sent
        report.failed += r.failed
        report.retried += r.retried
