"""A newsletter batch as plain rows, written set-based (``funnel.newsletter.rows``):
what ``plain_batch`` does with an ORM object per reader, in a handful of
statements per batch, as the plan's step does. ``FAST_NEWSLETTER=0`` turns it off.

The guarantees are the same (README "Delivery guarantees"): the intents are
committed in one statement before anything is sent; the recipients and their
subscribers are read again under their row locks right before the shared send
step, so an unsubscribe, a pause or a cancel that commits first always wins; the
outcomes, the cursors and the ``email.sent`` events are written in the send
step's one commit."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel.drip.rows import DeliveryRow
from funnel.mail import sending
from funnel.mail.sending import BROADCAST, DONE_STATES, RETRY, SENDING, UNKNOWN, Outgoing
from funnel.models import (
    BROADCAST_CANCELLED,
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    OUTCOME_CANCELLED,
    OUTCOME_SENT,
    Broadcast,
    UTCDateTime,
    new_public_id,
)
from funnel.newsletter import rows
from funnel.newsletter.outgoing import (
    RENDER_RECHECK,
    BroadcastReport,
    finish_issues,
    settle,
    why_not,
)
from funnel.newsletter.rows import Ledger, RecipientRow
from funnel.tagging import tag_names

if TYPE_CHECKING:
    from funnel.newsletter.work import BroadcastWork

log = logging.getLogger(__name__)


def _issues(s: Session, recs: list[RecipientRow]) -> dict[int, Broadcast]:
    """The batch's issues (usually one), read once, not joined into every row."""
    wanted = {r.broadcast_id for r in recs}
    if not wanted:
        return {}
    return {b.id: b for b in s.scalars(select(Broadcast).where(Broadcast.id.in_(wanted)))}


def _deliveries(s: Session, issues: dict[int, Broadcast], recs: list[RecipientRow]
                ) -> list[DeliveryRow]:
    """The batch's readers' deliveries of their issue."""
    out: list[DeliveryRow] = []
    for issue in issues.values():
        out += rows.deliveries(s, issue.slug, [r.subscriber_id for r in recs
                                               if r.broadcast_id == issue.id])
    return out


class RowBatch:
    def __init__(self, work: BroadcastWork) -> None:
        self.work = work

    def process(self, ids: list[int], now: datetime, report: BroadcastReport) -> None:
        work = self.work
        intents: dict[int, DeliveryRow] = {}
        with work.sessions() as s:
            recs = rows.recipients(s, ids, lock=False)
            issues = _issues(s, recs)
            existing = {(d.subscriber_id, d.step_slug): d for d in _deliveries(s, issues, recs)}
            ledger = Ledger(s, recs, existing.values(), work.clock)
            starting: set[int] = set()
            for rec in recs:
                if rec.outcome is not None or rec.lease_owner != work.owner:
                    continue
                row = issues[rec.broadcast_id]
                if row.status == BROADCAST_CANCELLED:
                    settle(rec, OUTCOME_CANCELLED)
                    continue
                if row.status == BROADCAST_SCHEDULED:
                    starting.add(row.id)
                d = existing.get((rec.subscriber_id, row.slug))
                if d is not None and d.state in DONE_STATES:
                    settle(rec, OUTCOME_SENT)  # reached already (an earlier run)
                    continue
                outcome = why_not(rec, now)
                if outcome is not None:
                    if d is not None:
                        ledger.delete(d)  # an unsent retry: withdrawn, nothing went out
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
                    d = DeliveryRow(id=None, public_id=new_public_id(),
                                    subscriber_id=rec.subscriber_id, kind=BROADCAST,
                                    step_slug=row.slug, state=SENDING, attempts=0,
                                    created_at=now)
                    ledger.add(d)
                d.state = SENDING
                d.attempts += 1
                intents[rec.id] = d
            if starting:
                # Only an issue still scheduled starts: a cancel that committed
                # meanwhile is never undone.
                s.execute(update(Broadcast).where(
                    Broadcast.id.in_(starting), Broadcast.status == BROADCAST_SCHEDULED).values(
                    status=BROADCAST_SENDING,
                    started_at=func.coalesce(Broadcast.started_at, literal(now, UTCDateTime()))))
            try:
                ledger.commit()  # the intents are durable before anything is sent
            except IntegrityError:
                # The unique delivery is the last line of defence: leave the batch to
                # its leases and look again later, never send twice.
                log.error("a broadcast delivery already existed in this batch; left to its lease")
                return
            touched = {r.broadcast_id for r in recs}
        if intents:
            self._send(intents, now, report)
        finish_issues(work.sessions, touched, now)

    def _send(self, intents: dict[int, DeliveryRow], now: datetime,
              report: BroadcastReport) -> None:
        work = self.work
        why: dict[int, str] = {}

        def hold(rec: RecipientRow, _d: DeliveryRow) -> bool:
            if rec.outcome is not None or rec.broadcast_status == BROADCAST_CANCELLED:
                why[rec.id] = OUTCOME_CANCELLED
            elif (outcome := why_not(rec, now)) is not None:
                why[rec.id] = outcome
            return rec.id in why

        def after(rec: RecipientRow, d: DeliveryRow | None) -> None:
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
            recs = rows.recipients(s, list(intents), lock=True)
            issues = _issues(s, recs)
            current = {d.public_id: d for d in _deliveries(s, issues, recs)}
            ledger = Ledger(s, recs, current.values(), work.clock)
            pairs: list[tuple[RecipientRow, DeliveryRow]] = []
            for rec in recs:
                if rec.lease_owner != work.owner:
                    continue  # our lease ran out and another worker took over
                d = current.get(intents[rec.id].public_id)
                if d is None or d.state != SENDING:
                    continue
                pairs.append((rec, d))
            tags = tag_names(s, [rec.subscriber_id for rec, _d in pairs])
            for rec, _d in pairs:
                if tags.get(rec.subscriber_id):
                    rec.tag_names = frozenset(tags[rec.subscriber_id])
            made = work.issues.render([(issues[rec.broadcast_id], rec.variant, rec, d)
                                       for rec, d in pairs], now)
            items: list[Outgoing] = []
            for (rec, d), msg in zip(pairs, made, strict=True):
                if isinstance(msg, Exception):  # never stop the batch
                    log.error("broadcast %s could not be rendered: %s", d.step_slug, msg,
                              exc_info=msg)
                    d.state, d.error = sending.HELD, f"could not be rendered: {msg}"[:2000]
                    d.attempts -= 1
                    rec.due_at, rec.lease_until = now + RENDER_RECHECK, None
                    continue
                items.append(Outgoing(rec, d, msg))
            r = sending.send(ledger, work.transport, items, now=now, hold=hold, after=after,
                             max_attempts=work.max_attempts)
        report.sent += r.sent
        report.failed += r.failed
        report.retried += r.retried
