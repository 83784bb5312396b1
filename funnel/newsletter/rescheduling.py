"""Moving a scheduled newsletter to another time, until its first email leaves.

Cancelling is ``scheduling.cancel``; this only changes when. Once a worker has
written a delivery for the slug (or holds a lease on one of its readers), the
broadcast has started and the move is refused: some readers would have it at
the old time and some at the new.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from funnel.core.broadcast import local_due
from funnel.core.schedule import zone
from funnel.core.states import SubjectTestState
from funnel.models import BROADCAST_SCHEDULED, BroadcastRecipient, Delivery, Subscriber
from funnel.models import Broadcast as BroadcastRow
from funnel.newsletter.scheduling import BROADCAST_KIND, ScheduleError
from funnel.newsletter.subject_tests import set_rows


def move(session: Session, slug: str, *, at: datetime | None, local: time | None,
         now: datetime, default_timezone: str) -> BroadcastRow:
    """Give every waiting reader of ``slug`` the new due time; commits."""
    q = select(BroadcastRow).where(BroadcastRow.slug == slug)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()  # a worker starting it now waits for us, or we see it started
    row = session.scalar(q)
    if row is None:
        raise ScheduleError(f"'{slug}' has not been scheduled: nothing to move")
    started = session.scalar(select(func.count()).where(
        Delivery.step_slug == slug, Delivery.kind == BROADCAST_KIND)) or 0
    leased = session.scalar(select(func.count()).where(
        BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.lease_until > now)) or 0
    if row.status != BROADCAST_SCHEDULED or started or leased:
        session.rollback()
        state = row.status if row.status != BROADCAST_SCHEDULED else "going out"
        raise ScheduleError(f"'{slug}' is {state}: the first emails have left, so it can no longer be moved "
                            "(cancel it to stop the rest)")
    start = max(at or now, now)
    waiting = (BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.outcome.is_(None),
               BroadcastRecipient.due_at.is_not(None))  # held rows wait for a test's decision
    if local is None:
        session.execute(update(BroadcastRecipient).where(*waiting).values(due_at=start))
    else:
        by_zone: dict[str, list[int]] = {}
        for rec_id, tz in session.execute(
                select(BroadcastRecipient.id, Subscriber.timezone)
                .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
                .where(*waiting)):
            by_zone.setdefault(tz, []).append(rec_id)
        for tz, ids in by_zone.items():
            set_rows(session, ids, due_at=local_due(start, local, zone(tz, default_timezone)))
    row.send_at = start
    row.local_time = local.strftime("%H:%M") if local else None
    if row.test_state == SubjectTestState.TESTING and row.test_wait_seconds is not None:
        last_due = session.scalar(select(func.max(BroadcastRecipient.due_at)).where(
            BroadcastRecipient.broadcast_id == row.id, BroadcastRecipient.sampled.is_(True)))
        row.test_decide_at = (last_due or start) + timedelta(seconds=row.test_wait_seconds)
    session.commit()
    return row
