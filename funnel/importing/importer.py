"""Importing and exporting the list as CSV. No Flask in here.

An import never changes anyone already on the list, never adds an address on the
suppression list, and reports each bad row by its line number without stopping.
Each batch of rows is committed on its own, so an import cut short can simply be
run again: what went in is skipped as "already on the list".

Speed: rows go in batches of ``BATCH``, each staged in a temporary table and moved
by a handful of set-based statements (``_insert_batch``), so a batch costs the same
few round trips however many rows it holds, and memory holds one batch at a time.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, TypeVar

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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel.config import Settings
from funnel.core import lifecycle
from funnel.core.inputs import FunnelError, clean_first_name, normalise_email
from funnel.core.states import ConsentAction
from funnel.hooks import events as hook_events
from funnel.models import (
    AppState,
    ConsentRecord,
    Subscriber,
    Suppression,
    UTCDateTime,
    new_public_id,
)
from funnel.subscribers import queries
from funnel.subscribers.privacy import suppression_hash

BATCH = 5000
T = TypeVar("T")
KNOWN_COLUMNS = ("email", "first_name", "status", "source")
IMPORTABLE_STATUSES = (lifecycle.PENDING, lifecycle.CONFIRMED, lifecycle.UNSUBSCRIBED,
                       lifecycle.BOUNCED, lifecycle.COMPLAINED)
EXPORT_COLUMNS = ("email", "first_name", "status", "source", "medium", "campaign", "referrer",
                  "signed_up_at", "confirmed_at", "unsubscribed_at")
# A cell starting with one of these is a formula to a spreadsheet: a first name
# typed into our public form must not run in the marketer's Excel.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

CONFIRMED_TEXT = ("Imported as confirmed. The marketer stated, by importing them as confirmed, "
                  "that this person consented to receive these emails.")
UNCONFIRMED_TEXT = ("Imported without a statement of consent: nothing is sent to this address "
                    "unless the person signs up and confirms it themselves.")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no email column, not CSV)."""


@dataclass(frozen=True)
class BadRow:
    line: int
    problem: str


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    already_listed: int = 0
    confirmed_now: int = 0  # pending from an earlier import, confirmed by this one
    duplicates: int = 0
    suppressed: int = 0
    bad: list[BadRow] = field(default_factory=list)
    ignored_columns: tuple[str, ...] = ()

    def summary(self) -> str:
        again = f"{self.confirmed_now} earlier pending imports confirmed, " \
            if self.confirmed_now else ""
        return (f"{self.rows} rows: {self.added} added, {again}"
                f"{self.already_listed} already on the list, "
                f"{self.duplicates} repeated in the file, {self.suppressed} refused (suppressed), "
                f"{len(self.bad)} bad")


@dataclass(frozen=True)
class _Candidate:
    line: int
    email: str
    first_name: str | None
    status: str
    source: str | None


# -- reading ---------------------------------------------------------------------

def unescape_cell(value: str) -> str:
    """Undo ``escape_cell``: our own exports import back unchanged."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


def escape_cell(value: str) -> str:
    return "'" + value if value and value[0] in FORMULA_START else value


def read_csv(fh: IO[str]) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and (line number, row) pairs; line numbers are the file's, header = 1.

    Column names are matched without regard to case or surrounding spaces.
    """
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("the file is empty; expected a header row with an email column")
    except csv.Error as exc:
        raise ImportFileError(f"not a CSV file: {exc}") from exc
    names = [h.strip().lower().lstrip("\ufeff") for h in header]
    if "email" not in names:
        raise ImportFileError(
            "no 'email' column in the header row (columns: email, first_name, "
            "and optionally status and source)")

    return names, csv_rows(reader, names, len(names))


def csv_rows(reader: Iterator[list[str]], fields: list[str], width: int
             ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {field: value}) for each non-empty row after the header, with the file's own
    line numbers; ``fields`` names each column ('' to leave it out). A row that cannot be
    read, or has more cells than the header's ``width``, carries an ``__error__``."""
    line = getattr(reader, "line_num", 0) + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, {"__error__": f"unreadable CSV: {exc}"}
            line = getattr(reader, "line_num", 0) + 1
            continue
        if values and any(v.strip() for v in values):
            row = {f: values[i] for i, f in enumerate(fields) if f and i < len(values)}
            if len(values) > width:
                row["__error__"] = (f"{len(values)} cells but the header has {width} columns "
                                    "(a comma inside a value needs quotes)")
            yield line, row
        line = getattr(reader, "line_num", 0) + 1


def _parse(line: int, row: dict[str, str], confirmed: bool) -> _Candidate | BadRow:
    if "__error__" in row:
        return BadRow(line, row["__error__"])
    raw_email = unescape_cell((row.get("email") or "").strip())
    if not raw_email:
        return BadRow(line, "the email is empty")
    try:
        email = normalise_email(raw_email)
    except FunnelError as exc:
        return BadRow(line, f"{exc} ({raw_email[:80]!r})")
    try:
        first_name = clean_first_name(unescape_cell(row.get("first_name") or ""))
    except FunnelError as exc:
        return BadRow(line, str(exc))
    status = (row.get("status") or "").strip().lower()
    if not status:
        status = lifecycle.CONFIRMED if confirmed else lifecycle.PENDING
    elif status not in IMPORTABLE_STATUSES:
        return BadRow(line, f"unknown status {status[:30]!r} (use one of "
                            f"{', '.join(IMPORTABLE_STATUSES)})")
    elif status == lifecycle.CONFIRMED and not confirmed:
        return BadRow(line, "status 'confirmed' needs --confirmed, your statement that "
                            "these people consented to these emails")
    source = unescape_cell((row.get("source") or "").strip()) or None
    if source and len(source) > 100:
        return BadRow(line, "the source is longer than 100 characters")
    return _Candidate(line, email, first_name, status, source)


# -- importing -------------------------------------------------------------------

def import_rows(
    session: Session,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    confirmed: bool,
    now: datetime,
    settings: Settings | None = None,
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
    consent_source: str | None = None,
    admin: str | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Add the rows' new addresses to the list; see the module docstring.

    ``confirmed`` is the marketer's statement that these people consented:
    rows without a status become confirmed and start the sequence at once (the
    worker still sends inside each person's sending window). Without it they
    become pending and are sent nothing. ``origin`` (the file name) is kept
    with each consent record, and so are ``consent_source`` (where the marketer
    says consent came from) and ``admin`` (who said so).

    A confirmed import also confirms people an *earlier import* left pending
    (its statement covers them). Nobody else already on the list changes.
    ``dry_run`` counts all of this without writing anything (the preview).
    """
    report = ImportReport()
    opts = _Options(settings.default_timezone if settings else "UTC", origin, consent_source,
                    admin, dry_run)
    for batch, consumed in _read_ahead(_batches(rows, confirmed, report)):
        if batch:
            _store(session, batch, report, now, opts)
        if progress and consumed:
            progress(consumed)
    return report


def _batches(rows: Iterable[tuple[int, dict[str, str]]], confirmed: bool, report: ImportReport
             ) -> Iterator[tuple[list[_Candidate], int]]:
    """(up to ``BATCH`` new addresses, rows read for them); bad rows and repeats go
    straight into ``report``."""
    batch: list[_Candidate] = []
    consumed = 0
    with _SeenAddresses() as seen:
        for line, row in rows:
            report.rows += 1
            consumed += 1
            parsed = _parse(line, row, confirmed)
            if isinstance(parsed, BadRow):
                report.bad.append(parsed)
            elif not seen.add(parsed.email):
                report.duplicates += 1
            else:
                batch.append(parsed)
            if len(batch) >= BATCH:
                yield batch, consumed
                batch, consumed = [], 0
    if batch or consumed:
        yield batch, consumed


_END = object()


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each made by a thread while the caller works on the one before.

    Reading and checking the next batch then overlaps with the database writing
    this one (the driver lets go of the GIL while it waits). One item waits at
    most, so memory stays at a few batches; an error on either side stops both.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the caller's thread, raised there
            handoff.put((_END, exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # in this thread: the generator's SQLite file was opened here
        handoff.put((_END, None))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let it see the stop, even if it is blocked on put
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


class _SeenAddresses:
    """The addresses met so far in this file, to report repeats.

    Kept in a private, temporary SQLite file rather than a Python set: a million
    addresses would hold about 150 MB here, while SQLite keeps a few MB of its pages
    in memory and the rest on disk, so memory stays flat however long the file.
    """

    def __enter__(self) -> _SeenAddresses:
        # "" names a private temporary database, deleted when closed.
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-8000")  # KiB
        self._db.execute("CREATE TABLE seen (email TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")
        return self

    def add(self, email: str) -> bool:
        """True the first time ``email`` is met."""
        cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (email,))
        return cur.rowcount == 1

    def __exit__(self, *exc: object) -> None:
        self._db.close()


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


def _store(session: Session, batch: list[_Candidate], report: ImportReport, now: datetime,
           opts: _Options) -> None:
    for attempt in range(2):
        try:
            if opts.dry_run:
                added, again, already, suppressed = _count_batch(session, batch)
                session.rollback()
            else:
                added, again, already, suppressed = _insert_batch(session, batch, now, opts)
                session.commit()
        except IntegrityError:
            # Another process created the suppression salt at the same moment: again.
            session.rollback()
            if attempt:
                raise
            continue
        report.added += added
        report.confirmed_now += again
        report.already_listed += already
        report.suppressed += suppressed
        return


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


def _count_batch(session: Session, batch: list[_Candidate]) -> tuple[int, int, int, int]:
    """What ``_insert_batch`` would do, read-only: (added, confirmed now, already, suppressed)."""
    hashed = _hasher(session)
    hashes = {c.email: hashed(c.email) for c in batch}
    blocked = set(session.scalars(
        select(Suppression.email_hash).where(Suppression.email_hash.in_(list(hashes.values())))
    ))
    allowed = [c for c in batch if hashes[c.email] not in blocked]
    emails = [c.email for c in allowed]
    listed = set(session.scalars(select(Subscriber.email).where(Subscriber.email.in_(emails))))
    confirming = [c.email for c in allowed if c.email in listed
                  and c.status == lifecycle.CONFIRMED]
    again = len(list(session.scalars(_earlier_pending_imports(confirming)))) if confirming else 0
    return len(allowed) - len(listed), again, len(listed) - again, len(batch) - len(allowed)


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
    if new:
        ids = (min(new.values()), max(new.values()))
        conn.execute(_insert_consents(now, opts.page, ids))
        _announce(conn, staged, ids, now, opts)
    STAGE.drop(conn)
    confirming = [c.email for c in batch if c.status == lifecycle.CONFIRMED
                  and c.email not in new and c.email not in refused]
    again = _confirm_earlier(session, confirming, now, opts.page, opts) if confirming else 0
    allowed = len(batch) - len(refused)
    return len(new), again, allowed - len(new) - again, len(refused)


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
              opts: _Options) -> None:
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
                {**values, "timezone": opts.timezone, "created_at": now}),
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


# -- exporting -------------------------------------------------------------------

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
        for row in rows:
            yield [
                escape_cell(v) if isinstance(v, str) else
                (v.isoformat() if isinstance(v, datetime) else "")
                for v in row[1:]
            ]


def write_csv(fh: IO[str], rows: Iterable[list[str]]) -> int:
    """Write rows; returns how many subscribers (rows after the header) were written."""
    writer = csv.writer(fh, lineterminator="\r\n")
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return max(count, 0)
