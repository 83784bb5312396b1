"""The sign-up intake: one INSERT in the request (every front writes the same row),
the rest in the worker, which checks each row again and takes it in."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from funnel import metrics
from funnel.core.inputs import clean_first_name, normalise_email
from funnel.core.states import IntakeState, IntakeVia
from funnel.db import skip_locked
from funnel.models import SignupIntake
from funnel.subscribers import intake_check, intake_writer
from funnel.subscribers.actions import SignupMeta, _subscribe_once

log = logging.getLogger(__name__)

UTM_KEYS = ("source", "medium", "campaign", "term", "content")


# A row that fails on its own this many times is left in the intake for the
# operator (the log says which), so one bad sign-up cannot hold up the others and
# the mail queued behind them.
INTAKE_MAX_ATTEMPTS = 5


INTAKE_KEYS = ("email", "first_name", "timezone", "at", "ip", "user_agent", "page", "referrer",
               *(f"utm_{k}" for k in UTM_KEYS), "via")


def intake_row(*, email: str, first_name: str | None, timezone: str, meta: SignupMeta,
               now: datetime, front: str | None = None) -> dict[str, Any]:
    """A sign-up as the intake keeps it, checked and cut to its columns. Raises
    FunnelError (with the field) for an address or a name that cannot be used, so
    the person is told at once; nothing about the address is looked up.
    ``front``: ``IntakeVia.EMBED`` or ``IntakeVia.API``; the landing page leaves
    it out and its row says whether the visitor came through the article."""
    if now.tzinfo is None:
        # The raw INSERT skips UTCDateTime's own refusal, and SQLite would read a
        # naive time as local.
        raise ValueError("a sign-up's time must be timezone-aware")
    utm = meta.utm or {}

    def kept(value: str | None, size: int) -> str | None:
        # Where they came from is ours to record, not theirs to be told about: a NUL
        # (which PostgreSQL refuses in text) is dropped rather than failing the sign-up.
        return (value or "").replace("\x00", "")[:size] or None

    return {
        "email": normalise_email(email), "first_name": clean_first_name(first_name),
        "timezone": timezone, "at": now, "ip": kept(meta.ip, 64),
        "user_agent": kept(meta.user_agent, 500), "page": kept(meta.page, 500),
        "referrer": kept(meta.referrer, 500),
        **{f"utm_{k}": kept(utm.get(k), 100) for k in UTM_KEYS},
        "via": str(front) if front in (IntakeVia.EMBED, IntakeVia.API)
        else IntakeVia.ARTICLE.value if meta.via == "article" else IntakeVia.DIRECT.value,
    }


@functools.lru_cache(maxsize=16)  # one per engine's dialect; tests make many engines
def _intake_sql(dialect: Any) -> tuple[str, tuple[str, ...] | None]:
    compiled = insert(SignupIntake).compile(dialect=dialect, column_keys=list(INTAKE_KEYS))
    order = compiled.positiontup
    return compiled.string, tuple(order) if order is not None else None


def record_intake(engine: Engine, row: dict[str, Any]) -> None:
    """Write one sign-up to the intake and commit: the request's only statement.

    The same single INSERT for every address, new, pending, confirmed or
    suppressed, so neither the answer nor its timing says which. Compiled once per
    dialect and handed to the driver as it is: SQLAlchemy's per-statement work
    and the ORM's flush were most of a sign-up's time (README, Benchmarks)."""
    from funnel.db import sqlite_time

    sql, order = _intake_sql(engine.dialect)
    if engine.dialect.name == "sqlite":
        params: Any = tuple(sqlite_time(row[k]) if k == "at" else row[k] for k in order or ())
    elif order is not None:
        params = tuple(row[k] for k in order)
    else:
        params = row
    # Grouped (PostgreSQL, SIGNUP_GROUP_COMMIT): several requests' rows, one commit.
    if not intake_writer.submit(engine, params, _write_intake_rows, _write_intake_row):
        _write_intake_row(engine, params)


def _write_intake_rows(engine: Engine, rows: Sequence[Any]) -> None:
    """Several sign-ups in one transaction: one flush to disk for them all."""
    sql, _order = _intake_sql(engine.dialect)
    conn = engine.raw_connection()
    try:
        raw = conn.dbapi_connection
        cursor = conn.cursor()
        try:
            if engine.dialect.name == "postgresql":
                with raw.transaction():  # type: ignore[union-attr]  # psycopg: BEGIN..COMMIT in autocommit
                    cursor.executemany(sql, rows)
            else:  # SQLite's driver runs in autocommit here (funnel.db): BEGIN by hand
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    cursor.executemany(sql, rows)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
        finally:
            cursor.close()
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, conn.dbapi_connection, None):
            conn.invalidate(exc)
        raise
    finally:
        conn.close()


def _write_intake_row(engine: Engine, params: Any) -> None:
    sql, _order = _intake_sql(engine.dialect)
    dialect = engine.dialect
    for attempt in range(2):
        try:
            conn = engine.raw_connection()  # SQLAlchemy's Connection cost twice the driver's call
        except dialect.loaded_dbapi.Error as exc:
            # The pool hands the driver's own error on; wrapped, the 503 page answers it.
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error,
                                      dialect=dialect) from exc
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(sql, params)
            finally:
                cursor.close()
            conn.commit()  # PostgreSQL: autocommit already did; SQLite: outside any transaction
        except dialect.loaded_dbapi.Error as exc:
            gone = dialect.is_disconnect(exc, conn.dbapi_connection, None)
            if gone:
                conn.invalidate(exc)
                # After a restart every pooled connection is dead, not only this one.
                engine.dispose()
            if gone and not attempt:
                # The intake engine does not ping first: a connection the server closed
                # (a restart) fails here and is dropped; the next one is new.
                continue
            # As SQLAlchemy raises it, so the 503 page answers a database that is away.
            raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                      connection_invalidated=gone, dialect=dialect) from exc
        finally:
            conn.close()
        return


@dataclass
class IntakeReport:
    taken: int = 0      # intake rows turned into sign-ups (or dropped: suppressed, bounced)
    signed_up: int = 0  # new people (or people back after unsubscribing)
    queued: int = 0     # of them, how many have a system email waiting
    refused: int = 0    # rows failing the sign-up rules: kept as refused, never mailed


def take_intake(sessions: sessionmaker[Session], *, limit: int = 200) -> IntakeReport:
    """Turn up to ``limit`` intake rows, oldest first, into what ``subscribe`` makes
    of them, each as of its request's time, and delete them in the same
    transaction: a worker that dies part way leaves every row for the next pass,
    and no row becomes two sign-ups or two confirmations. Rows another worker is
    taking are skipped (PostgreSQL) or waited for (SQLite's single writer)."""
    report = IntakeReport()
    with sessions() as s:
        q = (select(SignupIntake).where(SignupIntake.attempts < INTAKE_MAX_ATTEMPTS,
                                        SignupIntake.state == IntakeState.WAITING)
             .order_by(SignupIntake.id).limit(limit))
        rows = list(s.scalars(skip_locked(q, s)))
        ids = [r.id for r in rows]  # read now: a rollback expires the rows
        if not rows:
            s.commit()
            return report
        try:
            done = [row.id for row in rows if _take(s, row, report)]
            s.execute(delete(SignupIntake).where(SignupIntake.id.in_(done)))
            s.commit()
        except OperationalError:
            raise  # the database is away or chose this pass as a deadlock's victim: retry it
        except Exception:
            # A new address arrived another way at the same moment (the API, an
            # import, a second worker), or one row cannot be taken in: one row at a
            # time, each seeing the others, so the rest go through.
            s.rollback()
            s.close()  # on SQLite, the next sessions need the write lock it held
            report = IntakeReport()
            for row_id in ids:
                _take_alone(sessions, row_id, report)
    for _ in range(report.signed_up):
        metrics.SIGNUPS.inc()
    return report


def _take_alone(sessions: sessionmaker[Session], row_id: int, report: IntakeReport) -> None:
    failure: Exception | None = None
    for attempt in range(2):
        with sessions() as s:
            row = s.scalar(skip_locked(select(SignupIntake).where(SignupIntake.id == row_id), s))
            if row is None:
                return  # taken by another worker meanwhile
            mine = IntakeReport()
            try:
                if _take(s, row, mine):
                    s.delete(row)
                s.commit()
            except OperationalError:
                raise
            except IntegrityError as exc:
                s.rollback()
                failure = exc
                if not attempt:
                    continue  # the other writer has committed by now: look again
            except Exception as exc:
                s.rollback()
                failure = exc
            else:
                report.taken += mine.taken
                report.signed_up += mine.signed_up
                report.queued += mine.queued
                report.refused += mine.refused
                return
        break
    if failure is not None:
        _count_failure(sessions, row_id, failure)


def _count_failure(sessions: sessionmaker[Session], row_id: int, failure: Exception) -> None:
    with sessions() as s:
        attempts = s.scalar(update(SignupIntake).where(SignupIntake.id == row_id)
                            .values(attempts=SignupIntake.attempts + 1)
                            .returning(SignupIntake.attempts))
        s.commit()
    # The row's id, never its address: the log is not a place for personal data.
    if attempts is not None and attempts >= INTAKE_MAX_ATTEMPTS:
        log.error("sign-up intake row %d failed %d times (%s: %s); left in signup_intake "
                  "for the operator", row_id, attempts, type(failure).__name__, failure)
    else:
        log.warning("sign-up intake row %d failed (%s: %s); tried again next pass",
                    row_id, type(failure).__name__, failure)


def _take(s: Session, row: SignupIntake, report: IntakeReport) -> bool:
    """Every sign-up, from every front, comes in here. The row is checked again by
    the rules the fronts apply (``intake_check``): one that fails is marked refused
    with its reason and kept, and nothing about it is looked up or mailed.
    True when the row is done with (to be deleted), False when it was refused."""
    reason = intake_check.refusal(row)
    if reason is not None:
        row.state = IntakeState.REFUSED
        row.refused_reason = reason
        report.refused += 1
        # Its id, never its address: the log is not a place for personal data.
        log.warning("sign-up intake row %d refused: %s", row.id, reason)
        return False
    meta = SignupMeta(ip=row.ip, user_agent=row.user_agent, page=row.page, referrer=row.referrer,
                      utm={k: v for k in UTM_KEYS if (v := getattr(row, f"utm_{k}"))},
                      via=row.via)
    sub, fresh = _subscribe_once(s, row.email, row.first_name, row.timezone, meta, row.at,
                                 late=True)
    report.taken += 1
    report.signed_up += fresh
    report.queued += sub is not None
    return True


