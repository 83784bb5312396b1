"""The worker writes a batch back with set-based statements (funnel/drip/store.py):
only what it changed, so a change someone else commits meanwhile is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite

from funnel.drip.store import sqlite_time
from funnel.models import Subscriber, UTCDateTime
from funnel.runtime import make_worker


def test_a_batch_writes_back_only_the_columns_it_changed(app, db, make_subscriber, clock,
                                                         db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("on SQLite the batch holds the write lock: nobody can commit meanwhile")
    sub = make_subscriber("paused.meanwhile@example.com",
                          lease_until=clock.now + timedelta(minutes=5))
    store = make_worker(app.extensions["funnel"]).store
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
    store = make_worker(app.extensions["funnel"]).store
    due = clock.now.replace(microsecond=0) + timedelta(days=2)
    with store.transaction() as s:
        batch = store.load(s, [sub.id], lock=False)
        store.release(batch.subs[0], due)
        batch.commit()
    assert store.claim_due(due - timedelta(microseconds=1), clock.now) == []
    assert store.claim_due(due, clock.now) == [sub.id]
