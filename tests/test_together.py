"""The dashboard's parts, read at once on PostgreSQL, add up as if read in one transaction."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from funnel import stats
from funnel.models import Subscriber
from funnel.together import read_together


def _count(s) -> int:
    return s.scalar(select(func.count()).select_from(Subscriber)) or 0


def test_every_part_answers(app, make_subscriber):
    make_subscriber("a@example.com")
    make_subscriber("b@example.com", status="pending")
    rt = app.extensions["funnel"]
    with rt.sessions() as page:
        got = read_together(page, rt.sessions, {
            "people": _count, "statuses": stats.status_counts, "nobody": lambda s: None})
    assert got == {"people": 2, "statuses": {"confirmed": 1, "pending": 1}, "nobody": None}


def test_a_sign_up_committed_mid_page_is_in_no_part(app, db_url, make_subscriber, db):
    """Otherwise one table could count the new person and the next one not."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite answers the parts in turn in one transaction")
    make_subscriber("a@example.com")
    rt = app.extensions["funnel"]
    committed = threading.Event()

    def first(s):
        before = _count(s)
        db.add(Subscriber(email="late@example.com", status="pending", timezone="UTC",
                          created_at=s.scalar(select(func.now()))))
        db.commit()  # on another connection, while the page is being read
        committed.set()
        return before

    def second(s):
        assert committed.wait(10)
        return _count(s)

    with rt.sessions() as page:
        got = read_together(page, rt.sessions, {"first": first, "second": second})
    assert got == {"first": 1, "second": 1}
    with rt.sessions() as after:
        assert _count(after) == 2
