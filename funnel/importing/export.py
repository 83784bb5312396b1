"""The list as a CSV file: who is on it, where they came from and their tags."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from funnel import tagging
from funnel.importing.csv_files import escape_cell
from funnel.models import (
    Subscriber,
)
from funnel.subscribers import queries

EXPORT_COLUMNS = ("email", "first_name", "status", "source", "medium", "campaign", "referrer",
                  "signed_up_at", "confirmed_at", "unsubscribed_at", "tags")


def export_rows(session: Session, *, search: str | None = None, status: str | None = None,
                chunk: int = 2000) -> Iterator[list[str]]:
    """The header, then one row per subscriber, oldest first.

    Read in chunks by id, each in its own short transaction: on SQLite every
    transaction holds the write lock, and a long export must not hold up sign-ups.
    """
    yield list(EXPORT_COLUMNS)
    last_id = 0
    while True:
        rows = session.execute(queries.subscriber_search(
            select(Subscriber.id, Subscriber.email, Subscriber.first_name, Subscriber.status,
                   Subscriber.utm_source, Subscriber.utm_medium, Subscriber.utm_campaign,
                   Subscriber.referrer, Subscriber.created_at, Subscriber.confirmed_at,
                   Subscriber.unsubscribed_at)
            .where(Subscriber.id > last_id).order_by(Subscriber.id).limit(chunk),
            search=search, status=status,
        )).all()
        session.rollback()
        if not rows:
            return
        last_id = rows[-1][0]
        tags = tagging.tag_names(session, [row[0] for row in rows])
        session.rollback()
        for row in rows:
            yield [
                escape_cell(v) if isinstance(v, str) else
                (v.isoformat() if isinstance(v, datetime) else "")
                for v in row[1:]
            ] + [", ".join(tags[row[0]])]
