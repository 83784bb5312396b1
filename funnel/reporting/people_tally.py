"""People with a consent record in a period, once each, from cells kept by triggers.

Each consent record is a cell of ``consent_tally`` (migration 0010): its UTC day,
its action, the day of the same person's previous record of that action, and
where the person came from. A person has a record in the whole days
``first..last`` exactly when one of their records there has no previous record
before ``first``; so "once per person per period" is a sum of cells instead of a
distinct count over the period's records joined with the list. No Flask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from funnel.models import ConsentTally

ORIGIN = ("utm_source", "referrer", "utm_medium", "utm_campaign", "arrived_via")


def _first_since(since: Any) -> ColumnElement[bool]:
    """The record is the person's first of its action from ``since`` on."""
    return or_(ConsentTally.prev_day.is_(None), ConsentTally.prev_day < since)


def by_action(session: Session, actions: Sequence[str], first: date, last: date
              ) -> dict[str, int]:
    """People with a record of each action on days first..last, once per person."""
    got = dict(session.execute(
        select(ConsentTally.action, func.sum(ConsentTally.n))
        .where(ConsentTally.action.in_(actions), ConsentTally.day >= first,
               ConsentTally.day <= last, _first_since(first))
        .group_by(ConsentTally.action)).all())
    return {action: int(got.get(action) or 0) for action in actions}


def by_day(session: Session, actions: Sequence[str], first: date, last: date
           ) -> list[tuple[Any, ...]]:
    """(day 'YYYY-MM-DD', people with each action that day...) for days with any."""
    table: dict[str, list[int]] = {}
    for day, action, n in session.execute(
        select(ConsentTally.day, ConsentTally.action, func.sum(ConsentTally.n))
        .where(ConsentTally.action.in_(actions), ConsentTally.day >= first,
               ConsentTally.day <= last, _first_since(ConsentTally.day))
        .group_by(ConsentTally.day, ConsentTally.action)).all():
        if n:
            table.setdefault(str(day), [0] * len(actions))[list(actions).index(action)] = int(n)
    return [(day, *counts) for day, counts in sorted(table.items())]


def by_origin(session: Session, first: date, last: date) -> list[tuple[Any, ...]]:
    """(*origin, sign-ups, confirmations, confirmations of people with a sign-up record)
    on days first..last, once per person, by where people came from."""
    origin = [getattr(ConsentTally, c) for c in ORIGIN]
    counted = {"signup": 0, "confirm": 1}
    rows: dict[tuple[Any, ...], list[int]] = {}
    for *key, action, signed_up, n in session.execute(
        select(*origin, ConsentTally.action, ConsentTally.signed_up, func.sum(ConsentTally.n))
        .where(ConsentTally.action.in_(counted), ConsentTally.day >= first,
               ConsentTally.day <= last, _first_since(first))
        .group_by(*origin, ConsentTally.action, ConsentTally.signed_up)).all():
        if not n:
            continue
        sums = rows.setdefault(tuple(key), [0, 0, 0])
        sums[counted[action]] += int(n)
        if action == "confirm" and signed_up:
            sums[2] += int(n)
    return [(*key, *sums) for key, sums in rows.items()]
