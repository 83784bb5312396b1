"""Writing one batch of imported people with a few set-based statements: staged in a
temporary table, then subscribers, consent records, tags and webhook events."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    exists,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session

from funnel import tagging
from funnel.core import lifecycle
from funnel.core.states import ConsentAction, TagSource
from funnel.hooks import events as hook_events
from funnel.models import (
    AppState,
    ConsentRecord,
    Subscriber,
    Suppression,
    UTCDateTime,
    new_public_id,
)
from funnel.subscribers.privacy import suppression_hash


@dataclass(frozen=True)
class _Options:
    timezone: str
    origin: str | None
    consent_source: str | None
    admin: str | None
    dry_run: bool

    @property
    def page(self) -> str:
        return f"import: {self.origin}"[:500] if self.origin else "import"


def _hasher(session: Session) -> Callable[[str], str]:
    """``suppression_hash`` with the salt read once, for a whole batch."""
    suppression_hash(session, "")  # creates the salt if this database has none yet
    salt = session.get(AppState, "suppression_salt")
    assert salt is not None
    key = salt.value.encode()
    return lambda email: hmac.new(key, email.encode(), hashlib.sha256).hexdigest()


def _earlier_pending_imports(emails: list[str]):
    """People an import added as pending who never signed up themselves."""
    return (select(Subscriber.id).where(
        Subscriber.email.in_(emails), Subscriber.status == lifecycle.PENDING,
        exists().where(ConsentRecord.subscriber_id == Subscriber.id,
                       ConsentRecord.action == ConsentAction.IMPORT),
        ~exists().where(ConsentRecord.subscriber_id == Subscriber.id,
                        ConsentRecord.action == ConsentAction.SIGNUP)))


CONFIRMED_TEXT = ("Imported as confirmed. The marketer stated, by importing them as confirmed, "
                  "that this person consented to receive these emails.")


UNCONFIRMED_TEXT = ("Imported without a statement of consent: nothing is sent to this address "
                    "unless the person signs up and confirms it themselves.")


@dataclass(frozen=True)
class _Candidate:
    line: int
    email: str
    first_name: str | None
    status: str
    source: str | None
    tags: tuple[str, ...] = ()


# One batch on its way in, with every value its subscriber row and consent record need.
# Created and dropped inside the batch's transaction (so a failed batch leaves none).
STAGE = Table(
    "import_stage", MetaData(),
    Column("line", Integer), Column("public_id", String), Column("email", String),
    Column("first_name", String), Column("status", String), Column("status_reason", String),
    Column("utm_source", String), Column("confirmed_at", UTCDateTime()),
    Column("unsubscribed_at", UTCDateTime()), Column("next_due_at", UTCDateTime()),
    Column("email_hash", String), Column("consent_text", Text), Column("stated_by", String),
    prefixes=["TEMPORARY"],
)


# Staged as they are into the subscriber table (timezone and created_at are the batch's).
STAGED_SUBSCRIBER_COLUMNS = ("public_id", "email", "first_name", "status", "status_reason",
                             "utm_source", "confirmed_at", "unsubscribed_at", "next_due_at")


def _stage_row(c: _Candidate, hashed: Callable[[str], str], now: datetime,
               opts: _Options) -> tuple:
    """The batch table's row for a candidate, in ``STAGE``'s column order."""
    is_confirmed = c.status == lifecycle.CONFIRMED
    return (
        c.line, new_public_id(), c.email, c.first_name, c.status,
        None if c.status in (lifecycle.PENDING, lifecycle.CONFIRMED)
        else f"imported as {c.status}",
        c.source,
        now if is_confirmed else None,
        now if c.status == lifecycle.UNSUBSCRIBED else None,
        # The worker picks them up on its next pass and plans step 1.
        now if is_confirmed else None,
        hashed(c.email),
        _consent_text(c.status, opts.consent_source),
        opts.admin if is_confirmed else None,
    )


def _insert_batch(session: Session, batch: list[_Candidate], now: datetime,
                  opts: _Options) -> tuple[int, int, int, int]:
    """Insert what is new and confirm earlier pending imports when this one is
    confirmed; returns (added, confirmed now, already on the list, suppressed).

    Set-based: the batch goes into a temporary table (COPY on PostgreSQL), then a
    few statements move it: suppressed addresses out, new subscribers in, and one
    consent record per new subscriber. The statements that write subscribers and
    consent records are ``_insert_subscribers`` and ``_insert_consents`` (and
    ``_confirm_earlier`` for earlier pending imports).
    """
    hashed = _hasher(session)
    staged = [_stage_row(c, hashed, now, opts) for c in batch]
    conn = session.connection()
    STAGE.drop(conn, checkfirst=True)  # SQLite keeps temporary tables per connection
    STAGE.create(conn)
    _fill_stage(conn, staged)
    refused = set(conn.execute(delete(STAGE).where(
        STAGE.c.email_hash.in_(select(Suppression.email_hash))).returning(STAGE.c.email)
    ).scalars())
    new: dict[str, int] = {email: sid for email, sid in conn.execute(
        _insert_subscribers(conn, now, opts.timezone))}
    tagged = {c.email: c.tags for c in batch if c.tags and c.email not in refused}
    _tag_batch(session, tagged, now, opts)
    if new:
        ids = (min(new.values()), max(new.values()))
        conn.execute(_insert_consents(now, opts.page, ids))
        _announce(conn, staged, ids, now, opts, tagged)
    STAGE.drop(conn)
    confirming = [c.email for c in batch if c.status == lifecycle.CONFIRMED
                  and c.email not in new and c.email not in refused]
    again = _confirm_earlier(session, confirming, now, opts.page, opts) if confirming else 0
    allowed = len(batch) - len(refused)
    return len(new), again, allowed - len(new) - again, len(refused)


def _tag_batch(session: Session, tagged: dict[str, tuple[str, ...]], now: datetime,
               opts: _Options) -> None:
    """The ``tags`` column: each tag added, in one statement per tag, to every row's
    address, new or already listed (adding a tag is all it does: nothing else of
    someone already on the list changes, and a tag they have keeps its first date)."""
    by_tag: dict[str, list[str]] = {}
    for email, tags in tagged.items():
        for tag in tags:
            by_tag.setdefault(tag, []).append(email)
    for tag, emails in by_tag.items():
        tagging.add_tag_where(session, tag,
                              select(Subscriber.id).where(Subscriber.email.in_(emails)),
                              now=now, source=TagSource.IMPORT, reason=opts.page[:200])


def _fill_stage(conn: Connection, staged: list[tuple]) -> None:
    names = list(STAGE.c.keys())
    if conn.dialect.name == "postgresql":
        # COPY: one stream, no statement to parse per row (multi-row INSERTs spent
        # more time in the driver's placeholder parsing than in the database).
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        with dbapi.cursor() as cur, cur.copy(
                f"COPY {STAGE.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in staged:
                copy.write_row(row)
    else:
        # The driver's own executemany: SQLAlchemy's per-row parameter handling cost
        # more than SQLite's insert. Its only conversion here, datetimes, done by hand.
        to_db = UTCDateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
        assert to_db is not None
        when = {i for i, column in enumerate(STAGE.c) if isinstance(column.type, UTCDateTime)}
        conn.exec_driver_sql(
            f"INSERT INTO {STAGE.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [tuple(to_db(v) if i in when and v is not None else v for i, v in enumerate(row))
             for row in staged])


def _insert_subscribers(conn: Connection, now: datetime, timezone_name: str):
    """INSERT … SELECT from the batch, ON CONFLICT DO NOTHING, RETURNING the new emails.

    An address already on the list is skipped by the database itself: no look-up
    first, which stays fast however long the list, and a sign-up racing the
    import cannot make the batch fail. Rows go in file order (ids follow the file).
    """
    columns = [*STAGED_SUBSCRIBER_COLUMNS, "timezone", "created_at"]
    rows = (select(*(STAGE.c[name] for name in STAGED_SUBSCRIBER_COLUMNS),
                   literal(timezone_name, String()), literal(now, UTCDateTime()))
            .where(true())  # SQLite needs a WHERE before ON CONFLICT after a SELECT
            .order_by(STAGE.c.line))
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return (postgresql.insert(Subscriber).from_select(columns, rows)
                .on_conflict_do_nothing().returning(Subscriber.email, Subscriber.id))
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return (sqlite.insert(Subscriber).from_select(columns, rows)
                .on_conflict_do_nothing().returning(Subscriber.email, Subscriber.id))
    raise RuntimeError(f"importing is not supported on {dialect}")


def _added(ids: tuple[int, int]):
    """The batch's rows joined to the subscribers it added: same public id, and an id in
    the range the insert returned (which keeps the join to an index range however long
    the list: without it PostgreSQL may hash the whole subscriber table per batch)."""
    return (Subscriber.public_id == STAGE.c.public_id) & Subscriber.id.between(*ids)


def _insert_consents(now: datetime, page: str, ids: tuple[int, int]):
    """One IMPORT consent record per subscriber this batch added."""
    return insert(ConsentRecord).from_select(
        ["subscriber_id", "action", "at", "text", "page", "stated_by"],
        select(Subscriber.id, literal(ConsentAction.IMPORT, String()), literal(now, UTCDateTime()),
               STAGE.c.consent_text, literal(page, String()), STAGE.c.stated_by)
        .join_from(STAGE, Subscriber, _added(ids))
        .order_by(STAGE.c.line))


def _announce(conn: Connection, staged: list[tuple], ids: tuple[int, int], now: datetime,
              opts: _Options, tagged: dict[str, tuple[str, ...]]) -> None:
    """Queue subscriber.created for webhook endpoints that want it (a Core INSERT
    bypasses the ORM listener that does this for other ways in), in this batch's
    transaction like any other event."""
    endpoints = [e for e in hook_events.active_endpoints(conn)
                 if hook_events.SUBSCRIBER_CREATED in e[1]]
    if not endpoints:
        return
    added: dict[str, int] = {public_id: sid for public_id, sid in conn.execute(
        select(Subscriber.public_id, Subscriber.id).join_from(STAGE, Subscriber, _added(ids)))}
    names = list(STAGE.c.keys())
    events: list[tuple[str, dict[str, Any], int | None]] = []
    for row in staged:
        values = dict(zip(names, row))
        if values["public_id"] in added:
            events.append((hook_events.SUBSCRIBER_CREATED, hook_events.subscriber_row_data(
                {**values, "timezone": opts.timezone, "created_at": now,
                 "tags": sorted(tagged.get(values["email"], ()))}),
                added[values["public_id"]]))
    hook_events.enqueue(conn, events, now, endpoints)


def _confirm_earlier(session: Session, emails: list[str], now: datetime, page: str,
                     opts: _Options) -> int:
    targets = list(session.scalars(_earlier_pending_imports(emails)))
    if not targets:
        return 0
    session.execute(
        update(Subscriber).where(Subscriber.id.in_(targets),
                                 Subscriber.status == lifecycle.PENDING)
        .values(status=lifecycle.CONFIRMED, confirmed_at=now, next_due_at=now)
    )
    text = ("Confirmed by a later import: the marketer stated that this person consented."
            + (f" Where consent came from: {opts.consent_source}" if opts.consent_source else ""))
    session.execute(insert(ConsentRecord).returning(ConsentRecord.id), [
        {"subscriber_id": sid, "action": ConsentAction.CONFIRM, "at": now, "text": text[:2000],
         "page": page, "stated_by": opts.admin} for sid in targets
    ])
    return len(targets)


def _consent_text(status: str, consent_source: str | None = None) -> str:
    if status == lifecycle.CONFIRMED:
        if consent_source:
            return f"{CONFIRMED_TEXT} Where consent came from: {consent_source}"
        return CONFIRMED_TEXT
    if status == lifecycle.PENDING:
        return UNCONFIRMED_TEXT
    return f"Imported as {status}: nothing is sent to this address."
