"""The worker's named statements: claiming due work, loading it, replanning.

Exactly-once rests on three things (README "Delivery guarantees"):
1. a unique (subscriber, kind, step) row in ``delivery``, written and committed
   as an intent *before* the email is handed to the transport;
2. a lease on each claimed subscriber (``lease_until``, ``lease_owner``), so a
   worker that dies is replaced after ``lease_seconds`` and no two live workers
   hold the same subscriber;
3. the subscriber re-read under a row lock right before sending
   (``load(..., lock=True)``), so an unsubscribe that commits first always wins.

A batch is read and written as plain rows (``Batch``): a handful of set-based
statements per batch instead of two ORM objects per recipient, which was most
of a pass's time (README "Benchmarks").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import (
    Select,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from funnel.core.states import SubscriberStatus
from funnel.db import claim, lease_free
from funnel.drip import enrollments
from funnel.drip.rows import Batch, DeliveryRow, SubscriberRow, _read
from funnel.mail.sending import HELD, QUEUED, RETRY, SENDING, SYSTEM
from funnel.models import AppState, Delivery, Subscriber
from funnel.tagging import tag_names

FINGERPRINT_KEY = "sequence_fingerprint"


class Store:
    def __init__(self, sessions: sessionmaker[Session], *, owner: str, batch_size: int = 200,
                 lease_seconds: int = 300) -> None:
        self.sessions = sessions
        self.owner = owner[-64:]
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)

    # -- claiming ------------------------------------------------------------

    def claim_due(self, now: datetime, held_at: datetime) -> list[int]:
        """Lease up to a batch of subscribers whose drip cursor is due."""
        return self._claim(
            select(Subscriber.id).where(Subscriber.next_due_at <= now)
            .order_by(Subscriber.next_due_at), held_at)

    def claim_queued(self, now: datetime, held_at: datetime) -> list[int]:
        """Lease up to a batch of subscribers with system mail due (confirmations…)."""
        # IN, not a correlated EXISTS: SQLite ran EXISTS once per subscriber (a scan
        # of the whole list, ~300 ms at a million); IN starts from the few due rows
        # on ix_delivery_retry_at and looks the subscribers up by key.
        due = (select(Delivery.subscriber_id).where(Delivery.kind == SYSTEM)
               .where(Delivery.retry_at <= now))
        return self._claim(select(Subscriber.id).where(Subscriber.id.in_(due))
                           .order_by(Subscriber.id), held_at)

    def _claim(self, q: Select, held_at: datetime) -> list[int]:
        with self.sessions() as s:
            return claim(s, q.where(lease_free(Subscriber.lease_until, held_at))
                         .limit(self.batch_size), Subscriber,
                         lease_until=held_at + self.lease, lease_owner=self.owner)

    # -- loading -------------------------------------------------------------

    @staticmethod
    def load(s: Session, ids: list[int], *, lock: bool) -> Batch:
        """The subscribers with their deliveries; ``lock`` takes their row locks
        (on SQLite the session already holds the single write lock)."""
        conn = s.connection()
        lock = lock and conn.dialect.name == "postgresql"
        subs = [SubscriberRow(*row) for row in _read(conn, "subscriber", ids, lock)]
        by_id = {sub.id: sub for sub in subs}
        if by_id:
            for row in _read(conn, "delivery", list(by_id), False):
                by_id[row[2]].deliveries.append(DeliveryRow(*row))
            for sid, names in tag_names(s, list(by_id)).items():
                by_id[sid].tag_names = frozenset(names)
            for sid, rows in enrollments.load(conn, list(by_id)).items():
                by_id[sid].enrollments = rows
        return Batch(s, subs)

    def still_ours(self, sub: SubscriberRow) -> bool:
        """False when our lease ran out and another worker took the subscriber over."""
        return sub.lease_owner == self.owner

    @staticmethod
    def release(sub: SubscriberRow, next_due_at: datetime | None) -> None:
        sub.next_due_at = next_due_at
        sub.lease_until = None

    # -- replanning ----------------------------------------------------------

    def replan_if_changed(self, fingerprint: str, now: datetime) -> bool:
        """After the marketer edits the sequence, everyone's next step is re-decided
        once: their cursor moves to ``now`` (a retry keeps its backoff)."""
        with self.sessions() as s:
            state = s.get(AppState, FINGERPRINT_KEY)
            if state is not None and state.value == fingerprint:
                return False
            in_flight = (select(Delivery.id).where(Delivery.subscriber_id == Subscriber.id)
                         .where(Delivery.state.in_((SENDING, RETRY))).exists())
            s.execute(
                update(Subscriber)
                .where(Subscriber.status == SubscriberStatus.CONFIRMED)
                .where(or_(Subscriber.next_due_at.is_(None), Subscriber.next_due_at > now))
                .where(~in_flight)
                .values(next_due_at=now)
            )
            if state is None:
                s.add(AppState(key=FINGERPRINT_KEY, value=fingerprint))
            else:
                state.value = fingerprint
            try:
                s.commit()
            except IntegrityError:  # another worker recorded it first
                s.rollback()
            return True

    # -- the unit of work ----------------------------------------------------

    def transaction(self) -> Session:
        return self.sessions()


def unsent(sub: SubscriberRow, kind: str, *, now: datetime | None = None,
           where: Callable[[DeliveryRow], bool] | None = None) -> list[DeliveryRow]:
    """The subscriber's deliveries of ``kind`` not yet settled (due at ``now`` if given)."""
    rows = [d for d in sub.deliveries
            if d.kind == kind and d.state in (QUEUED, SENDING, RETRY, HELD)]
    if now is not None:
        rows = [d for d in rows if d.retry_at is not None and d.retry_at <= now]
    return [d for d in rows if where is None or where(d)]


# -- a batch as plain rows ------------------------------------------------------




