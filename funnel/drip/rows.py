"""A batch of the drip as plain rows: what the worker reads of subscribers and their
deliveries (two statements straight from the driver) and writes back (one
statement per kind of change, as executemany), without ORM objects."""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnClause,
    Connection,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from funnel.db import sqlite_time
from funnel.drip import enrollments
from funnel.hooks import capture
from funnel.mail.sending import SENT
from funnel.models import Delivery, Subscriber, UTCDateTime

_IDS = "__ids__"


@dataclass(slots=True, eq=False)
class DeliveryRow:
    """A ``delivery`` row. A batch writes rows by their ``public_id`` (unique, and
    made before the insert), so a new row's ``id`` stays None until it is read."""

    id: int | None
    public_id: str
    subscriber_id: int
    kind: str
    step_slug: str
    state: str
    attempts: int
    created_at: datetime
    error: str | None = None
    message_id: str | None = None
    provider_id: str | None = None
    sent_at: datetime | None = None
    retry_at: datetime | None = None

    def changes(self) -> tuple:
        """The columns a batch may change (DELIVERY_FIELDS), in that order."""
        return (self.state, self.attempts, self.error, self.message_id, self.provider_id,
                self.sent_at, self.retry_at)


@dataclass(slots=True, eq=False)
class SubscriberRow:
    """What the worker reads of a subscriber (what the planner, the composer and
    the hold checks need), with their deliveries."""

    id: int
    public_id: str
    email: str
    first_name: str | None
    status: str
    timezone: str | None
    confirmed_at: datetime | None
    paused_until: datetime | None
    wants_plan: bool
    next_due_at: datetime | None
    lease_until: datetime | None
    lease_owner: str | None
    wants_newsletter: bool
    utm_source: str | None
    deliveries: list[DeliveryRow] = field(default_factory=list)
    enrollments: list[enrollments.EnrollmentRow] = field(default_factory=list)
    tag_names: frozenset[str] = frozenset()  # for content by tag ({% if "x" in tags %})


SUBSCRIBER_COLUMNS = (
    Subscriber.id, Subscriber.public_id, Subscriber.email, Subscriber.first_name,
    Subscriber.status, Subscriber.timezone, Subscriber.confirmed_at, Subscriber.paused_until,
    Subscriber.wants_plan, Subscriber.next_due_at, Subscriber.lease_until, Subscriber.lease_owner,
    Subscriber.wants_newsletter, Subscriber.utm_source,
)


DELIVERY_COLUMNS = (
    Delivery.id, Delivery.public_id, Delivery.subscriber_id, Delivery.kind, Delivery.step_slug,
    Delivery.state, Delivery.attempts, Delivery.created_at, Delivery.error, Delivery.message_id,
    Delivery.provider_id, Delivery.sent_at, Delivery.retry_at,
)


_D = cast(Table, Delivery.__table__)


_S = cast(Table, Subscriber.__table__)


INSERT_DELIVERY = insert(_D)


DELIVERY_FIELDS = ("state", "attempts", "error", "message_id", "provider_id", "sent_at",
                   "retry_at")


CURSOR_FIELDS = ("next_due_at", "lease_until")


@functools.cache
def _update(table: str, columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET <columns> WHERE <key> = :_key``, one per set of columns."""
    if table == "delivery":
        stmt = update(_D).where(_D.c.public_id == bindparam("_key"))
    elif table == "delivery_by_id":  # rows read back: the row id, one index lookup less
        stmt = update(_D).where(_D.c.id == bindparam("_key"))
    else:  # any other table by its id: subscriber, broadcast_recipient
        t = _S if table == "subscriber" else Subscriber.metadata.tables[table]
        stmt = update(t).where(t.c.id == bindparam("_key"))
    return stmt.values({c: bindparam(c) for c in columns})


def updates_for(table: str, fields: tuple[str, ...],
             rows: list[tuple[Any, tuple, tuple]]) -> dict[Update, list[dict[str, Any]]]:
    """Only the columns that changed, grouped by which: a column this batch did not
    change is never written back (a concurrent writer's value stays). ``rows``:
    (key, values before, values now) in the order of ``fields``."""
    out: dict[Update, list[dict[str, Any]]] = {}
    # Most rows of a batch change the same columns: one lookup per such set.
    groups: dict[tuple[bool, ...], tuple[tuple[str, ...], tuple[int, ...], list]] = {}
    for key, before, now in rows:
        if before == now:
            continue
        mask = tuple(map(operator.ne, before, now))
        group = groups.get(mask)
        if group is None:
            which = tuple(i for i, changed in enumerate(mask) if changed)
            columns = tuple(fields[i] for i in which)
            group = groups[mask] = (columns, which, out.setdefault(_update(table, columns), []))
        columns, which, params = group
        row = {"_key": key}
        for c, i in zip(columns, which):
            row[c] = now[i]
        params.append(row)
    return out


# Where a batch's ids go in a statement read with ``read``: our own integers,
# written into the statement (one statement for any count).
IDS: ColumnClause[Any] = literal_column(f"({_IDS})")


def _ids_select(columns: tuple, key: Any, order: Any) -> Select:
    return select(*columns).where(key.op("IN")(IDS)).order_by(order)


_SUBSCRIBERS = _ids_select(SUBSCRIBER_COLUMNS, Subscriber.id, Subscriber.id)
_SUBSCRIBERS_LOCKED = _SUBSCRIBERS.with_for_update(of=Subscriber)
_DELIVERIES = _ids_select(DELIVERY_COLUMNS, Delivery.subscriber_id, Delivery.id)


@functools.lru_cache(maxsize=64)
def _select_sql(q: Select, dialect: Any
                ) -> tuple[str, tuple[str, ...] | None, tuple[int, ...], tuple[int, ...]]:
    """``q`` in the driver's SQL with ``__ids__`` where the ids go, for a positional
    driver its parameters' names in order, and which columns hold times and which
    booleans."""
    compiled = q.compile(dialect=dialect)
    sql = compiled.string
    assert sql.count(_IDS) == 1, sql
    columns = list(q.selected_columns)
    times = tuple(i for i, c in enumerate(columns) if isinstance(c.type, UTCDateTime))
    flags = tuple(i for i, c in enumerate(columns) if isinstance(c.type, Boolean))
    order = compiled.positiontup
    return sql, tuple(order) if order is not None else None, times, flags


def _read(conn: Connection, table: str, ids: list[int], lock: bool) -> list[list[Any]]:
    """The drip's rows of ``table`` (subscriber or delivery) for ``ids``."""
    q = _DELIVERIES if table == "delivery" else _SUBSCRIBERS_LOCKED if lock else _SUBSCRIBERS
    return read(conn, q, ids)


def read(conn: Connection, q: Select, ids: list[int],
         params: dict[str, Any] | None = None) -> list[list[Any]]:
    """The rows ``q`` selects for ``ids`` (``q`` holds ``IDS`` where they go; its
    other parameters are ``params``, plain values), read straight from the driver,
    times as aware UTC datetimes (as UTCDateTime gives them): SQLAlchemy's
    per-value result processing was most of what loading a batch cost."""
    if not ids:
        return []  # "IN ()" is not SQL everywhere
    sql, order, times, flags = _select_sql(q, conn.dialect)
    sql = sql.replace(_IDS, ",".join(str(int(i)) for i in ids))
    rows = (conn.exec_driver_sql(sql) if not params else conn.exec_driver_sql(
        sql, tuple(params[k] for k in order) if order is not None else params))
    seen: dict[Any, datetime] = {}  # a batch's times are mostly a few values
    out = []
    for raw in rows:
        row = list(raw)
        for i in times:
            v = row[i]
            if v is not None:
                t = seen.get(v)
                if t is None:
                    t = seen[v] = _utc(v)
                row[i] = t
        for i in flags:
            if row[i] is not None:
                row[i] = bool(row[i])
        out.append(row)
    return out


def _utc(value: str | datetime) -> datetime:
    """A stored time as ``UTCDateTime.process_result_value`` returns it."""
    if isinstance(value, str):  # SQLite's text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@functools.lru_cache(maxsize=64)  # a few statements per engine; tests make many engines
def _driver_sql(stmt: Insert | Update, dialect: Any, keys: tuple[str, ...]
                ) -> tuple[str, tuple[str, ...] | None, dict[str, Any], tuple[int, ...]]:
    """The statement in the driver's own SQL, for a positional driver the
    parameter names in order, the scalar column defaults an INSERT adds
    (``engaged = 0``) that the rows leave out, and which parameters (by position)
    are times."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    order = compiled.positiontup
    table = getattr(stmt, "table", None)
    defaults: dict[str, Any] = {}
    for name in compiled.binds:
        if name in keys:
            continue
        column = table.c.get(name) if table is not None else None
        default = column.default if column is not None else None
        if default is None or not default.is_scalar:
            raise ValueError(f"no value for {name!r} in {stmt}")
        defaults[name] = default.arg
    times = tuple(i for i, name in enumerate(order or ())
                  if table is not None and (column := table.c.get(name)) is not None
                  and isinstance(column.type, UTCDateTime))
    return compiled.string, tuple(order) if order is not None else None, defaults, times


def executemany(s: Session, stmt: Insert | Update, rows: list[dict[str, Any]]) -> None:
    """``s.execute(stmt, rows)`` for the worker's hot statements, straight to the
    driver: SQLAlchemy's per-row parameter and type handling was most of what a
    batch's writes cost. Every row has the same keys; on SQLite, times are
    turned into their stored text here (PostgreSQL takes aware datetimes)."""
    conn = s.connection()
    sql, order, defaults, times = _driver_sql(stmt, conn.dialect, tuple(rows[0]))
    if defaults:
        rows = [{**defaults, **r} for r in rows]
    if order is None:  # a driver with named parameters (psycopg) takes the rows
        conn.exec_driver_sql(sql, rows)
        return
    values = operator.itemgetter(*order) if len(order) > 1 else (lambda r: (r[order[0]],))
    params: list[tuple] = list(map(values, rows))
    if times and conn.dialect.name == "sqlite":
        seen: dict[datetime, str] = {}  # a batch's times are mostly its one ``now``
        for k, row in enumerate(params):
            converted = None
            for i in times:
                v = row[i]
                if v is not None:
                    if converted is None:
                        converted = list(row)
                    text = seen.get(v)
                    if text is None:
                        text = seen[v] = sqlite_time(v)
                    converted[i] = text
            if converted is not None:
                params[k] = tuple(converted)
    conn.exec_driver_sql(sql, params)


class Batch:
    """The rows of one batch in one transaction, and what changed in them.

    The worker and the send step change the rows' attributes as they would ORM
    objects; ``commit`` writes every change with one statement per kind (an
    executemany of the columns that changed), then commits. ``delete`` and ``commit`` are all the send step
    asks of a session. Writing bypasses the ORM, so the ``email.sent`` webhook
    event is queued here (``hooks.capture.sent``), in the same transaction.
    """

    def __init__(self, session: Session, subs: list[SubscriberRow]) -> None:
        self.session = session
        self.subs = subs
        self._deleted: list[DeliveryRow] = []
        self._mark()

    def __iter__(self):
        return iter(self.subs)

    def _mark(self) -> None:
        self._cursors = {sub.id: (sub.next_due_at, sub.lease_until) for sub in self.subs}
        self._rows = {d.public_id: d.changes() for sub in self.subs for d in sub.deliveries}

    def delete(self, d: DeliveryRow) -> None:
        for sub in self.subs:
            if sub.id == d.subscriber_id and d in sub.deliveries:
                sub.deliveries.remove(d)
        if d.public_id in self._rows:
            self._deleted.append(d)

    def flush(self) -> None:
        s = self.session
        if self._deleted:
            s.execute(delete(_D).where(_D.c.public_id.in_([d.public_id for d in self._deleted])))
            self._deleted = []
        known = self._rows
        changed: list[tuple[DeliveryRow, tuple, tuple]] = []
        new: list[DeliveryRow] = []
        for sub in self.subs:
            for d in sub.deliveries:
                before = known.get(d.public_id)
                if before is None:
                    new.append(d)
                elif before != (now := d.changes()):
                    changed.append((d, before, now))
        if new:
            executemany(s, INSERT_DELIVERY, [
                {"public_id": d.public_id, "subscriber_id": d.subscriber_id, "kind": d.kind,
                 "step_slug": d.step_slug, "state": d.state, "attempts": d.attempts,
                 "created_at": d.created_at, "error": d.error, "message_id": d.message_id,
                 "provider_id": d.provider_id, "sent_at": d.sent_at, "retry_at": d.retry_at}
                for d in new])
        updates = updates_for("delivery", DELIVERY_FIELDS,
                           [(d.public_id, before, now) for d, before, now in changed
                            if d.id is None])
        updates.update(updates_for("delivery_by_id", DELIVERY_FIELDS,
                                [(d.id, before, now) for d, before, now in changed
                                 if d.id is not None]))
        cursors = self._cursors
        updates.update(updates_for("subscriber", CURSOR_FIELDS,
                                [(sub.id, cursors[sub.id], (sub.next_due_at, sub.lease_until))
                                 for sub in self.subs]))
        for stmt, params in updates.items():
            executemany(s, stmt, params)
        enrollments.flush(s, [e for sub in self.subs for e in sub.enrollments])
        sent = [d for d in new if d.state == SENT] + [
            d for d, before, _now in changed if d.state == SENT and before[0] != SENT]
        if sent:
            capture.sent(s.connection(), sent, max(d.sent_at or d.created_at for d in sent))
        self._mark()

    def commit(self) -> None:
        self.flush()
        self.session.commit()
