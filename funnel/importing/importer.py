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

import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel import tagging
from funnel.config import Settings
from funnel.core import lifecycle
from funnel.core.inputs import FunnelError, clean_first_name, normalise_email
from funnel.importing.csv_files import unescape_cell
from funnel.importing.rows import (
    _Candidate,
    _earlier_pending_imports,
    _hasher,
    _insert_batch,
    _Options,
)
from funnel.models import (
    Subscriber,
    Suppression,
)

BATCH = 5000
T = TypeVar("T")
KNOWN_COLUMNS = ("email", "first_name", "status", "source", "tags")
IMPORTABLE_STATUSES = (lifecycle.PENDING, lifecycle.CONFIRMED, lifecycle.UNSUBSCRIBED,
                       lifecycle.BOUNCED, lifecycle.COMPLAINED)


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


# -- reading ---------------------------------------------------------------------


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
    try:
        tags = tuple(tagging.parse_tags(unescape_cell(row.get("tags") or "")))
    except FunnelError as exc:
        return BadRow(line, str(exc))
    return _Candidate(line, email, first_name, status, source, tags)


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


# -- exporting -------------------------------------------------------------------


