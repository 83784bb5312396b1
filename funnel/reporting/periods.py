"""Periods of time in the figures: whole UTC days, the day of a timestamp in the
database's own dialect, and rates that may have nothing to divide by."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, literal_column
from sqlalchemy.orm import Session


def rate(numerator: int, denominator: int) -> float | None:
    """A fraction, or None when there is nothing to divide by (shown as a dash)."""
    return numerator / denominator if denominator else None


def utc_day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The period covering whole UTC days ``first`` to ``last`` inclusive."""
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def days_in(start: datetime, end: datetime) -> list[date]:
    """The UTC days the period touches, oldest first."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp as 'YYYY-MM-DD', in the database's own dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), column),
                            literal_column("'YYYY-MM-DD'"))
    # SQLite keeps UTC text ('2026-12-01 09:00:00.000000'): the day is its prefix.
    return func.substr(column, 1, 10)


def within(column, start: datetime, end: datetime):
    return and_(column >= start, column < end)
