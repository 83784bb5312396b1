"""Storage limitation: sign-ups that were never confirmed are not kept forever.

A pending sign-up holds an address someone typed, plus the IP address and user
agent of whoever typed it. If the link is never clicked we have no consent to
keep any of it, so after ``PENDING_RETENTION_DAYS`` the person and their sign-up
records are deleted (no suppression entry: they may sign up again).

Only people whose whole history is unconfirmed sign-ups are purged; anyone who
once confirmed, withdrew or was imported has records the operator must keep.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from funnel.core import lifecycle
from funnel.core.states import DeliveryKind
from funnel.models import ConsentRecord, Delivery, Subscriber

SIGNUP = "signup"


def stale_pending(now: datetime, older_than: timedelta):
    """Ids of pending people with nothing but sign-ups, the last one before the cutoff."""
    cutoff = now - older_than
    other_history = exists().where(ConsentRecord.subscriber_id == Subscriber.id,
                                   ConsentRecord.action != SIGNUP)
    # Their own confirmation emails (system mail) are no history of their own.
    any_delivery = exists().where(Delivery.subscriber_id == Subscriber.id,
                                  Delivery.kind != DeliveryKind.SYSTEM)
    last_signup = (select(func.max(ConsentRecord.at))
                   .where(ConsentRecord.subscriber_id == Subscriber.id,
                          ConsentRecord.action == SIGNUP)
                   .scalar_subquery())
    return (
        select(Subscriber.id)
        .where(Subscriber.status == lifecycle.PENDING, Subscriber.created_at < cutoff,
               (Subscriber.confirm_sent_at.is_(None)) | (Subscriber.confirm_sent_at < cutoff),
               ~other_history, ~any_delivery, last_signup < cutoff)
    )


def purge_unconfirmed(session: Session, now: datetime, older_than: timedelta) -> int:
    """Delete never-confirmed sign-ups older than ``older_than``; returns how many.

    The condition is checked inside the DELETE itself, so someone who confirms
    while the purge runs is kept; their sign-up records go with them through the
    foreign key's ON DELETE CASCADE."""
    stale = stale_pending(now, older_than).subquery()
    result = session.execute(delete(Subscriber).where(Subscriber.id.in_(select(stale.c.id))))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)  # a DML result has a row count
