"""Emails with each kind of provider event in a period, once each, from kept cells.

Each provider event of an email is a cell of ``event_tally`` (migration 0010): its
UTC day, its group (opened, clicked…) and the day of the same email's previous
event of that group; each click also a cell of ``link_tally`` by email and link.
An email had an event of a group in the whole days ``first..last`` exactly when one
of those events has no previous one before ``first``: a sum of cells instead of a
distinct count over a month of events. No Flask here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from funnel.models import EventTally, LinkTally


def by_group(session: Session, first: date, last: date) -> dict[str, int]:
    """Emails with an event of each group on days first..last (groups with none left out)."""
    return {group: int(n) for group, n in session.execute(
        select(EventTally.event_group, func.sum(EventTally.n))
        .where(EventTally.day >= first, EventTally.day <= last,
               or_(EventTally.prev_day.is_(None), EventTally.prev_day < first))
        .group_by(EventTally.event_group)).all() if n}


def by_day(session: Session, groups: Sequence[str], first: date, last: date
           ) -> dict[str, dict[str, int]]:
    """{'YYYY-MM-DD': {group: emails with an event of that group that day}}."""
    out: dict[str, dict[str, int]] = {}
    for day, group, n in session.execute(
        select(EventTally.day, EventTally.event_group, func.sum(EventTally.n))
        .where(EventTally.event_group.in_(groups), EventTally.day >= first,
               EventTally.day <= last,
               or_(EventTally.prev_day.is_(None), EventTally.prev_day < EventTally.day))
        .group_by(EventTally.day, EventTally.event_group)).all():
        if n:
            out.setdefault(str(day), {})[group] = int(n)
    return out


def links(session: Session, first: date, last: date) -> list[tuple[str, str, int, int]]:
    """(email's step, link, clicks, emails clicked) for clicks on days first..last."""
    first_click = or_(LinkTally.prev_day.is_(None), LinkTally.prev_day < first)
    return [(slug, url, int(clicks), int(people or 0)) for slug, url, clicks, people in
            session.execute(
                select(LinkTally.step_slug, LinkTally.url, func.sum(LinkTally.n),
                       func.sum(LinkTally.n).filter(first_click))
                .where(LinkTally.day >= first, LinkTally.day <= last)
                .group_by(LinkTally.step_slug, LinkTally.url)).all() if clicks]
