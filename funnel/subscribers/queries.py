"""Named statements that more than one part of the app runs.

Like listmonk's queries.sql: one place to read (and index for) what the dashboard,
the CSV export and the CLI ask the database, instead of the same SQL twice.
"""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from funnel.models import Subscriber, Suppression


def subscriber_search(stmt: Select, *, search: str | None = None, status: str | None = None) -> Select:
    """The list's search: part of an address (case-insensitive) and/or one status."""
    if search and search.strip():
        stmt = stmt.where(Subscriber.email.contains(search.strip().lower(), autoescape=True))
    if status:
        stmt = stmt.where(Subscriber.status == status)
    return stmt


def suppression_summary(session: Session, latest: int = 100
                        ) -> tuple[list[tuple[str, int]], list[Suppression]]:
    """(count per reason, most common first; the latest entries) of the suppression list."""
    by_reason = [(reason, n) for reason, n in session.execute(
        select(Suppression.reason, func.count()).group_by(Suppression.reason)
        .order_by(func.count().desc())
    )]
    entries = list(session.scalars(
        select(Suppression).order_by(Suppression.id.desc()).limit(latest)))
    return by_reason, entries


def suppression_entry(session: Session, email_hash: str) -> Suppression | None:
    return session.scalar(select(Suppression).where(Suppression.email_hash == email_hash))


def subscriber_by_email(session: Session, address: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email == address))
