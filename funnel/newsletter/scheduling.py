"""The broadcast use cases: schedule, cancel, and what happened so far.

Scheduling freezes a copy of the file and writes one ``broadcast_recipient`` row
per person in the audience at that moment, each with the time it is due (the
same for everyone, or HH:MM in each reader's own zone). The worker then sends
due rows through the shared send step. A slug is scheduled once: its row is
unique, and so is each (subscriber, slug) delivery, so nothing goes out twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from pathlib import Path

from sqlalchemy import delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel.core.broadcast import Broadcast, Filter, local_due, parse_filter, source_text
from funnel.core.schedule import zone
from funnel.core.sequence import EmailSource, parse_email_text
from funnel.core.states import WAITING, ProgressPart
from funnel.hooks import events as hook_events
from funnel.models import (
    BROADCAST_CANCELLED,
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    BROADCAST_SENT,
    OUTCOME_CANCELLED,
    OUTCOME_SENT,
    BroadcastRecipient,
    BroadcastTally,
    Delivery,
    Subscriber,
    UTCDateTime,
)
from funnel.models import (
    Broadcast as BroadcastRow,
)
from funnel.newsletter import subject_tests
from funnel.newsletter.audience import audience_ids

BROADCAST_KIND = "broadcast"  # the delivery kind (funnel.sending.BROADCAST)
REASON = ("You are getting this because you signed up for Run Stronger and chose to "
          "get the newsletter.")


class ScheduleError(ValueError):
    """Refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class Scheduled:
    row: BroadcastRow
    recipients: int
    already_had: int  # left out because an earlier, cancelled run reached them
    test_note: str | None = None  # the subject test's split, or why none runs


def frozen_source(row: BroadcastRow, emails_dir: str) -> EmailSource:
    """The copy stored at scheduling, as an email source (its path names the file)."""
    path = Path(emails_dir, "broadcasts", f"{row.slug}.md")
    return parse_email_text(path, row.source)


def audience_of(row: BroadcastRow) -> Filter:
    return parse_filter(json.loads(row.audience or "{}"))


def find(session: Session, slug: str) -> BroadcastRow | None:
    return session.scalar(select(BroadcastRow).where(BroadcastRow.slug == slug))


def _already_had(slug: str):
    return (select(Delivery.id)
            .where(Delivery.subscriber_id == Subscriber.id, Delivery.step_slug == slug)
            .exists())


def schedule(
    session: Session,
    item: Broadcast,
    *,
    audience: Filter,
    now: datetime,
    at: datetime | None = None,
    local: time | None = None,
    default_timezone: str,
    last_step: str | None,
    test: subject_tests.TestPlan | None = None,
) -> Scheduled:
    """Schedule ``item`` for ``audience``; commits. Refuses a slug already on its way.

    A file with ``subjects:`` runs a subject test (``test``, else the defaults)."""
    text = source_text(item.source)
    start = max(at or now, now)
    row = find(session, item.slug)
    if row is not None and row.status != BROADCAST_CANCELLED:
        raise ScheduleError(
            f"'{item.slug}' is already {row.status} (since {row.created_at:%Y-%m-%d %H:%M} UTC): "
            "a slug is sent once. Write a new file with a new slug for a new issue.")
    if row is None:
        row = BroadcastRow(slug=item.slug, created_at=now)
        session.add(row)
    else:
        # Sending a cancelled broadcast again resumes it for those it has not reached.
        # Everyone not reached is looked at afresh; those reached keep their row.
        session.execute(delete(BroadcastRecipient).where(
            BroadcastRecipient.broadcast_id == row.id,
            or_(BroadcastRecipient.outcome.is_(None),
                BroadcastRecipient.outcome != OUTCOME_SENT)))
        row.cancelled_at = None
        row.finished_at = None
    row.status = BROADCAST_SCHEDULED
    row.subject = item.subject[:255]
    row.source = text
    row.archive = item.archive
    row.audience = json.dumps(audience.as_dict(), sort_keys=True)
    row.send_at = start
    row.local_time = local.strftime("%H:%M") if local else None
    try:
        session.flush()
    except IntegrityError as exc:  # scheduled by someone else a moment ago
        session.rollback()
        raise ScheduleError(f"'{item.slug}' was just scheduled by someone else") from exc
    base = audience_ids(audience, last_step, now)
    fresh = base.where(~_already_had(item.slug))
    already = session.scalar(select(func.count()).select_from(
        base.where(_already_had(item.slug)).subquery())) or 0
    cols = ["broadcast_id", "subscriber_id", "due_at"]
    if local is None:
        session.execute(insert(BroadcastRecipient).from_select(
            cols, fresh.with_only_columns(literal(row.id), Subscriber.id,
                                          literal(start, UTCDateTime()))))
    else:
        zones = session.scalars(fresh.with_only_columns(Subscriber.timezone).distinct()).all()
        for name in zones:
            due = local_due(start, local, zone(name, default_timezone))
            session.execute(insert(BroadcastRecipient).from_select(
                cols, fresh.where(Subscriber.timezone == name).with_only_columns(
                    literal(row.id), Subscriber.id, literal(due, UTCDateTime()))))
    note = subject_tests.start(session, row, item.subjects, test or subject_tests.TestPlan())
    count = session.scalar(select(func.count()).where(
        BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.outcome.is_(None))) or 0
    row.audience_size = count + (session.scalar(select(func.count()).where(
        BroadcastRecipient.broadcast_id == row.id,
        BroadcastRecipient.outcome.is_not(None))) or 0)
    session.commit()
    return Scheduled(row=row, recipients=count, already_had=already, test_note=note)


@dataclass(frozen=True)
class Progress:
    audience: int
    waiting: int     # not yet their turn, or claimed and on the way
    sent: int        # delivery rows in state sent
    failed: int      # failed or unknown
    skipped: int     # paused or left the list when their turn came
    cancelled: int

    @property
    def done(self) -> int:
        return self.audience - self.waiting


def progress(session: Session, row: BroadcastRow) -> Progress:
    """From the kept counts (funnel.newsletter.kept_progress): a few delta rows, however
    many readers the issue has; tests/recount.py counts the same from the rows."""
    kept = {(part, value): int(n or 0) for part, value, n in session.execute(
        select(BroadcastTally.part, BroadcastTally.value, func.sum(BroadcastTally.n))
        .where(BroadcastTally.slug == row.slug)
        .group_by(BroadcastTally.part, BroadcastTally.value)).all()}
    readers = {value: n for (part, value), n in kept.items() if part == ProgressPart.RECIPIENT}
    emails = {value: n for (part, value), n in kept.items() if part == ProgressPart.DELIVERY}
    return progress_from({None if k == WAITING else k: n for k, n in readers.items()}, emails)


def progress_from(by_outcome: dict, states: dict) -> Progress:
    """The figures from readers per outcome (None: waiting) and emails per delivery state."""
    return Progress(
        audience=sum(by_outcome.values()),
        waiting=by_outcome.get(None, 0),
        sent=states.get("sent", 0),
        failed=states.get("failed", 0) + states.get("unknown", 0),
        skipped=by_outcome.get("paused", 0) + by_outcome.get("left", 0),
        cancelled=by_outcome.get(OUTCOME_CANCELLED, 0),
    )


@dataclass(frozen=True)
class Cancelled:
    sent: int
    in_flight: int
    stopped: int


def cancel(session: Session, slug: str, now: datetime) -> Cancelled:
    """Stop what has not gone out yet; commits. Work a worker holds right now is
    re-checked by it before sending, so at most the batch already in the
    transport's hands still goes."""
    row = find(session, slug)
    if row is None:
        raise ScheduleError(f"'{slug}' has not been scheduled: nothing to cancel")
    if row.status in (BROADCAST_SENT, BROADCAST_CANCELLED):
        p = progress(session, row)
        raise ScheduleError(f"'{slug}' is already {row.status}: {p.sent} went out")
    row.status = BROADCAST_CANCELLED
    row.cancelled_at = now
    result = session.execute(
        update(BroadcastRecipient)
        .where(BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.outcome.is_(None))
        .values(outcome=OUTCOME_CANCELLED, due_at=None)
    )
    stopped = int(getattr(result, "rowcount", 0) or 0)  # a DML result has a row count
    session.commit()
    p = progress(session, row)
    in_flight = session.scalar(select(func.count()).where(
        Delivery.step_slug == slug, Delivery.kind == BROADCAST_KIND,
        Delivery.state.in_(("sending", "retry")))) or 0
    return Cancelled(sent=p.sent, in_flight=in_flight, stopped=stopped)


def mark_finished(session: Session, row_id: int, now: datetime) -> bool:
    """A broadcast with nobody left to do is sent (called by the worker after a batch).

    The ``broadcast.finished`` webhook is written in the same transaction as the
    status, and only by the one worker whose update found the broadcast unfinished,
    so endpoints hear of it exactly once. Returns True for that worker."""
    left = select(BroadcastRecipient.id).where(
        BroadcastRecipient.broadcast_id == row_id,
        BroadcastRecipient.outcome.is_(None)).exists()
    finished = session.execute(
        update(BroadcastRow)
        .where(BroadcastRow.id == row_id,
               BroadcastRow.status.in_((BROADCAST_SCHEDULED, BROADCAST_SENDING)), ~left)
        .values(status=BROADCAST_SENT, finished_at=now)
        .returning(BroadcastRow.id)).first()
    if finished is None:
        return False
    row = session.get(BroadcastRow, row_id, populate_existing=True)
    assert row is not None  # just updated under this transaction
    p = progress(session, row)
    hook_events.enqueue(session.connection(), [(hook_events.BROADCAST_FINISHED, {
        "slug": row.slug, "subject": row.subject,
        "send_at": hook_events.iso(row.send_at), "finished_at": hook_events.iso(now),
        "audience": p.audience, "sent": p.sent, "failed": p.failed, "skipped": p.skipped,
    }, None)], now)
    return True


def select_all():
    """Every scheduled broadcast, newest first."""
    return select(BroadcastRow).order_by(BroadcastRow.created_at.desc(), BroadcastRow.id.desc())
