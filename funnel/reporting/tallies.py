"""Counts kept as the data changes, so the dashboard and the list never scan a million rows.

Triggers (migration 0009) append a delta row to ``status_tally`` whenever a
subscriber is added, removed or changes status, and to ``step_tally`` whenever
an email becomes sent, stops being sent, or gains or loses an event group
(``delivery.engaged``, one bit per group). They run in the transaction that made
the change, whatever made it, so a sum of the deltas always equals a recount of
the rows. ``compact`` folds the deltas into one row per key; the worker calls it.
No Flask here.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.orm import Session

from funnel.core.states import DeliveryState
from funnel.models import (
    BroadcastTally,
    ConsentTally,
    EventTally,
    LinkTally,
    LinkUnsubscribeTally,
    ProblemTally,
    StatusTally,
    StepTally,
    VisitTally,
)
from funnel.reporting import figures, people_tally

# The groups and their bits of ``delivery.engaged`` are declared in figures.
FOLD_LOCK = 0x66756E6E656C  # the advisory lock of compact(): "funnel" in ASCII
BITS, GROUP_BITS, GROUPS = figures.BITS, figures.GROUP_BITS, figures.GROUPS


def whole_days(start: datetime, end: datetime) -> tuple[date, date]:
    """(first, last): the UTC days the period touches. Figures are kept per UTC day,
    so a period that starts or ends inside a day counts that whole day (the admin
    and the API only ask for whole days). An empty period gives first > last."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    if e <= s:
        return s.date(), date.fromordinal(s.date().toordinal() - 1)
    last = e.date() if e.timetz().replace(tzinfo=None) != time() else \
        date.fromordinal(e.date().toordinal() - 1)
    return s.date(), last


def status_counts(session: Session) -> dict[str, int]:
    """Subscribers per status right now (statuses with nobody are left out)."""
    return {status: int(n) for status, n in session.execute(
        select(StatusTally.status, func.sum(StatusTally.n)).group_by(StatusTally.status)
    ).all() if n}


@dataclass
class Sums:
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0

    def add(self, row) -> None:
        for name in ("sent", *GROUPS):
            setattr(self, name, getattr(self, name) + int(getattr(row, name) or 0))


def _sum_columns():
    return [func.sum(getattr(StepTally, name)).label(name) for name in ("sent", *GROUPS)]


def steps(session: Session, first: date, last: date, *, system: bool = False
          ) -> dict[str, Sums]:
    """Emails sent on days first..last and how many of them had each event group, by step.
    ``system=False`` leaves out confirmation and other system mail."""
    stmt = (select(StepTally.step_slug, *_sum_columns())
            .where(StepTally.day >= first, StepTally.day <= last)
            .group_by(StepTally.step_slug))
    if not system:
        stmt = stmt.where(StepTally.kind != "system")
    out: dict[str, Sums] = defaultdict(Sums)
    for row in session.execute(stmt).all():
        out[row.step_slug].add(row)
    return {slug: sums for slug, sums in out.items() if sums.sent}


def unsubscribed_via_link(session: Session, first: date, last: date) -> dict[str, int]:
    """Emails sent on days first..last credited with an unsubscribe through our own link
    (and not reported by the provider, which ``steps`` counts), by step."""
    return {slug: int(n) for slug, n in session.execute(
        select(LinkUnsubscribeTally.step_slug, func.sum(LinkUnsubscribeTally.n))
        .where(LinkUnsubscribeTally.day >= first, LinkUnsubscribeTally.day <= last)
        .group_by(LinkUnsubscribeTally.step_slug)).all() if n}


def sent_by_day(session: Session, first: date, last: date) -> dict[date, int]:
    """Emails of every kind sent per UTC day."""
    rows = session.execute(
        select(StepTally.day, func.sum(StepTally.sent))
        .where(StepTally.day >= first, StepTally.day <= last).group_by(StepTally.day)
    ).all()
    return {day: int(n) for day, n in rows if n}


def sent_ever(session: Session) -> dict[tuple[str, str], int]:
    """Emails sent, all time, per (kind, step)."""
    rows = session.execute(
        select(StepTally.kind, StepTally.step_slug, func.sum(StepTally.sent))
        .group_by(StepTally.kind, StepTally.step_slug)
    ).all()
    return {(kind, slug): int(n) for kind, slug, n in rows if n}


VISIT_KEYS = ("page", "via", "referrer_host", "utm_source", "utm_medium", "utm_campaign")


def visits(session: Session, start: datetime, end: datetime, *keys: str) -> list[tuple]:
    """Visits in the period grouped by ``keys`` (Visit columns, or "day" as 'YYYY-MM-DD'),
    as (*values, count), from the tally of the UTC days the period touches."""
    days = whole_days(start, end)
    cols = [VisitTally.day if k == "day" else getattr(VisitTally, k) for k in keys]
    rows = session.execute(
        select(*cols, func.sum(VisitTally.n))
        .where(VisitTally.day >= days[0], VisitTally.day <= days[1]).group_by(*cols)).all()
    day_at = keys.index("day") if "day" in keys else None
    out = []
    for row in rows:
        values = list(row)
        if not values[-1]:
            continue
        if day_at is not None:
            values[day_at] = str(values[day_at])
        values[-1] = int(values[-1])
        out.append(tuple(values))
    return out


def compact(session: Session) -> int:
    """Fold the delta rows into one per key; returns how many rows were folded.

    Only the rows this transaction deletes are summed back, so deltas committed
    meanwhile by other transactions stay as they are and nothing is counted twice.
    On PostgreSQL one worker folds at a time: the others skip (returning 0) rather
    than wait on the rows it is deleting. The caller commits.
    """
    if session.get_bind().dialect.name == "postgresql" and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": FOLD_LOCK}):
        return 0
    folded = 0
    gone = session.execute(delete(StatusTally).returning(StatusTally.status, StatusTally.n)).all()
    by_status: dict[str, int] = defaultdict(int)
    for status, n in gone:
        by_status[status] += n
    if rows := [{"status": s, "n": n} for s, n in by_status.items() if n]:
        session.execute(insert(StatusTally), rows)
    folded += len(gone)
    names = ("sent", *GROUPS)
    deltas = session.execute(delete(StepTally).returning(
        StepTally.day, StepTally.kind, StepTally.step_slug,
        *(getattr(StepTally, n) for n in names))).all()
    by_key: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(names))
    for delta in deltas:
        acc = by_key[(delta[0], delta[1], delta[2])]
        for i, v in enumerate(delta[3:]):
            acc[i] += v
    if rows := [{"day": day, "kind": kind, "step_slug": slug, **dict(zip(names, acc, strict=True))}
                for (day, kind, slug), acc in by_key.items() if any(acc)]:
        session.execute(insert(StepTally), rows)
    folded += len(deltas)
    visit_deltas = session.execute(delete(VisitTally).returning(
        VisitTally.day, *(getattr(VisitTally, k) for k in VISIT_KEYS), VisitTally.n)).all()
    by_visit: dict[tuple, int] = defaultdict(int)
    for delta in visit_deltas:
        by_visit[tuple(delta[:-1])] += delta[-1]
    if rows := [{"day": key[0], **dict(zip(VISIT_KEYS, key[1:], strict=True)), "n": n}
                for key, n in by_visit.items() if n]:
        session.execute(insert(VisitTally), rows)
    folded += len(visit_deltas)
    folded += _fold(session, ProblemTally, ("step_slug", "kind", "state", "error"),
                    ("n", "retryable"))
    folded += _fold(session, EventTally, ("day", "event_group", "prev_day"), ("n",))
    folded += _fold(session, LinkUnsubscribeTally, ("day", "step_slug"), ("n",))
    folded += _fold(session, LinkTally, ("day", "step_slug", "url", "prev_day"), ("n",))
    folded += _fold(session, BroadcastTally, ("slug", "part", "value"), ("n",))
    return folded + _fold(session, ConsentTally, ("day", "action", "prev_day", *people_tally.ORIGIN,
                                                  "signed_up"), ("n",))


TALLIES = (StatusTally, StepTally, VisitTally, ProblemTally, EventTally, LinkUnsubscribeTally,
           LinkTally, ConsentTally, BroadcastTally)


def vacuum(engine: Engine) -> None:
    """PostgreSQL: clear away the rows the last fold deleted. Readers sum a tally
    through its index, and until a vacuum every delta ever folded is still in it: a
    send of 44,000 emails left 132,000 dead entries and an issue's progress took
    19 ms instead of a fraction of one. Autovacuum comes by about once a minute at
    best; a fold's own vacuum of these small tables takes a few milliseconds."""
    if engine.dialect.name != "postgresql":
        return
    names = ", ".join(model.__tablename__ for model in TALLIES)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (SKIP_LOCKED) {names}")


def _fold(session: Session, model: Any, keys: tuple[str, ...], values: tuple[str, ...]) -> int:
    """Fold ``model``'s delta rows into one per key; returns how many were folded."""
    if session.get_bind().dialect.name == "postgresql":
        # In the database: deleting a person writes a delta row per cell of theirs, and
        # a purge of 90,000 unconfirmed sign-ups is 90,000 rows the worker need not hold.
        table, cols = model.__table__.name, ", ".join((*keys, *values))
        summed = ", ".join(f"SUM({v})" for v in values)
        nonzero = " OR ".join(f"SUM({v}) <> 0" for v in values)
        return int(session.execute(text(
            f"WITH gone AS (DELETE FROM {table} RETURNING {cols}), "
            f"kept AS (INSERT INTO {table} ({cols}) SELECT {', '.join(keys)}, {summed} FROM gone "
            f"GROUP BY {', '.join(keys)} HAVING {nonzero} RETURNING 1) "
            "SELECT (SELECT COUNT(*) FROM gone)")).scalar_one())
    deltas = session.execute(delete(model).returning(
        *(getattr(model, k) for k in keys), *(getattr(model, v) for v in values))).all()
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(values))
    for delta in deltas:
        acc = sums[tuple(delta[:len(keys)])]
        for i, v in enumerate(delta[len(keys):]):
            acc[i] += v
    if rows := [{**dict(zip(keys, key, strict=True)), **dict(zip(values, acc, strict=True))}
                for key, acc in sums.items() if any(acc)]:
        session.execute(insert(model), rows)
    return len(deltas)


def recount(session: Session) -> tuple[dict[str, int], dict[tuple[date, str, str], Sums]]:
    """The same figures counted from the raw rows: for tests and for checking a database."""
    from funnel.models import Delivery, DeliveryEvent, Subscriber

    statuses = {s: int(n) for s, n in session.execute(
        select(Subscriber.status, func.count()).group_by(Subscriber.status)).all()}
    sums: dict[tuple[date, str, str], Sums] = defaultdict(Sums)
    events: dict[int | None, set[str]] = defaultdict(set)
    for delivery_id, kind in session.execute(
            select(DeliveryEvent.delivery_id, DeliveryEvent.kind)
            .where(DeliveryEvent.delivery_id.is_not(None))).all():
        events[delivery_id].add(kind)
    for d in session.scalars(select(Delivery).where(Delivery.state == DeliveryState.SENT,
                                                    Delivery.sent_at.is_not(None))):
        assert d.sent_at is not None
        s = sums[(d.sent_at.astimezone(UTC).date(), d.kind, d.step_slug)]
        s.sent += 1
        groups = {g for k in events[d.id] for g, bit in GROUP_BITS.items() if BITS.get(k) == bit}
        for g in groups:
            setattr(s, g, getattr(s, g) + 1)
    return statuses, dict(sums)


def tallied(session: Session) -> tuple[dict[str, int], dict[tuple[date, str, str], Sums]]:
    """What the tallies say, in the shape of ``recount``."""
    names = ("sent", *GROUPS)
    sums: dict[tuple[date, str, str], Sums] = {}
    for row in session.execute(
            select(StepTally.day, StepTally.kind, StepTally.step_slug, *_sum_columns())
            .group_by(StepTally.day, StepTally.kind, StepTally.step_slug)).all():
        s = Sums()
        s.add(row)
        if any(getattr(s, n) for n in names):
            sums[(row.day, row.kind, row.step_slug)] = s
    return status_counts(session), sums
