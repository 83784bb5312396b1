"""The worker writes a batch back with set-based statements (funnel/drip/store.py):
only what it changed, so a change someone else commits meanwhile is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite

from funnel.db import sqlite_time
from funnel.drip.store import Store
from funnel.models import Subscriber, UTCDateTime
from funnel.runtime import make_worker


def store_of(app) -> Store:
    """The drip's store as a worker of this app would have it."""
    rt = app.extensions["funnel"]
    return Store(rt.sessions, owner="test-worker", batch_size=rt.settings.batch_size,
                 lease_seconds=rt.settings.lease_seconds)


def test_a_batch_writes_back_only_the_columns_it_changed(app, db, make_subscriber, clock,
                                                         db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("on SQLite the batch holds the write lock: nobody can commit meanwhile")
    sub = make_subscriber("paused.meanwhile@example.com",
                          lease_until=clock.now + timedelta(minutes=5))
    store = store_of(app)
    later = clock.now + timedelta(days=7)
    with store.transaction() as s:
        batch = store.load(s, [sub.id], lock=False)
        # The subscriber's own change (a pause moves their cursor) commits first…
        db.execute(update(Subscriber).where(Subscriber.id == sub.id).values(next_due_at=later))
        db.commit()
        # …and the worker only lets go of its lease.
        batch.subs[0].lease_until = None
        batch.commit()
    db.rollback()
    due, lease = db.execute(select(Subscriber.next_due_at, Subscriber.lease_until)
                            .where(Subscriber.id == sub.id)).one()
    assert lease is None
    assert due == later


def test_an_intent_is_written_before_the_send_and_its_outcome_after(app, db, make_subscriber,
                                                                    clock):
    """What the exactly-once guarantee rests on, seen from the database: during the
    transport's call the intent is committed as ``sending``; afterwards ``sent``."""
    from funnel.models import Delivery

    make_subscriber("intent@example.com")
    rt = app.extensions["funnel"]
    seen: list[tuple[str, str]] = []

    class Watching:
        idempotent = True
        max_batch = 100

        def send(self, messages):
            from funnel.transports import SendResult

            db.rollback()
            seen.extend((row[0], row[1]) for row in db.execute(
                select(Delivery.public_id, Delivery.state)))
            return [SendResult(m.key, True, provider_id="p") for m in messages]

    report = make_worker(rt, transport=Watching()).run_pass(clock.now)
    assert report.sent == 1
    assert [state for _id, state in seen] == ["sending"]
    db.rollback()
    assert db.scalars(select(Delivery.state)).all() == ["sent"]


@pytest.mark.parametrize("when", [
    datetime(2026, 12, 1, 9, 0, tzinfo=UTC),                    # no microseconds
    datetime(2026, 12, 1, 9, 0, 0, 5, tzinfo=UTC),
    datetime(2026, 12, 1, 10, 30, 15, 250000, tzinfo=ZoneInfo("Europe/Paris")),
])
def test_a_batch_writes_times_in_the_form_the_orm_reads_and_compares(when):
    # SQLite compares the stored text: a cursor written in another form would
    # be claimed too early or too late against the ORM's ``next_due_at <= now``.
    dialect = sqlite.dialect()
    orm = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert orm is not None
    assert sqlite_time(when) == orm(when)


def test_a_cursor_the_batch_writes_is_due_exactly_at_its_time(app, make_subscriber, clock):
    sub = make_subscriber("cursor@example.com")
    store = store_of(app)
    due = clock.now.replace(microsecond=0) + timedelta(days=2)
    with store.transaction() as s:
        batch = store.load(s, [sub.id], lock=False)
        store.release(batch.subs[0], due)
        batch.commit()
    assert store.claim_due(due - timedelta(microseconds=1), clock.now) == []
    assert store.claim_due(due, clock.now) == [sub.id]


def test_the_worker_reads_a_batch_exactly_as_the_app_stored_it(app, db, make_subscriber, clock):
    """The batch is read straight from the driver: every time comes back as the
    same aware UTC moment the ORM reads (microseconds, another zone's input), and
    a flag as a boolean, on SQLite and PostgreSQL alike."""
    from funnel.models import Delivery

    paused = datetime(2026, 12, 24, 18, 30, 15, 250000, tzinfo=ZoneInfo("Europe/Paris"))
    sub = make_subscriber("read.back@example.com", first_name="Zoë", wants_plan=False,
                          paused_until=paused,
                          lease_until=clock.now + timedelta(microseconds=7))
    db.add(Delivery(subscriber_id=sub.id, kind="drip", step_slug="welcome", state="retry",
                    attempts=2, created_at=clock.now, error="429",
                    retry_at=clock.now + timedelta(minutes=3, microseconds=1)))
    db.commit()
    store = store_of(app)
    with store.transaction() as s:
        row = store.load(s, [sub.id], lock=True).subs[0]
    db.expire_all()
    orm = db.get(Subscriber, sub.id)
    assert orm is not None
    for name in ("public_id", "email", "first_name", "status", "timezone", "confirmed_at",
                 "paused_until", "wants_plan", "next_due_at", "lease_until", "lease_owner"):
        assert getattr(row, name) == getattr(orm, name), name
    assert row.paused_until == paused and row.paused_until.tzinfo is UTC
    assert row.wants_plan is False
    [d] = row.deliveries
    stored = db.scalars(select(Delivery).where(Delivery.subscriber_id == sub.id)).one()
    for name in ("id", "public_id", "kind", "step_slug", "state", "attempts", "created_at",
                 "error", "sent_at", "retry_at"):
        assert getattr(d, name) == getattr(stored, name), name
    assert d.retry_at is not None and d.retry_at.tzinfo is UTC
