"""Engine and sessions: one session per request, one per worker batch."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, create_engine, event, or_, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _options(ours: str) -> str:
    """Our server settings after the operator's PGOPTIONS, which libpq would
    otherwise drop when a connection names its own options."""
    theirs = os.environ.get("PGOPTIONS", "").strip()
    return f"{theirs} {ours}" if theirs else ours


def make_engine(url: str, *, immediate: bool = True, busy_timeout: float = 5.0,
                connect_timeout: float = 5.0, **kwargs) -> Engine:
    """An engine; on SQLite, ``immediate`` takes the write lock when a transaction begins.

    Both waits stay far below gunicorn's 30 s request timeout, so a database that
    is away or locked gives a 503 page instead of a killed web process."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.get_backend_name() == "postgresql":
            # No JIT: every query here is short, and compiling one took longer than
            # running it (300 ms of a 550 ms dashboard query at a million subscribers).
            kwargs.setdefault("connect_args", {"connect_timeout": max(1, int(connect_timeout)),
                                               "options": _options("-c jit=off")})
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # One writer at a time: taking the write lock up front means two
        # workers can never both read a row as due and then both claim it.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_intake_engine(engine: Engine, connect_timeout: float = 5.0, *,
                       async_commit: bool = False) -> Engine:
    """The engine the sign-up form's one INSERT goes through (``subscribers.intake.record_intake``).

    On PostgreSQL its own small pool, in autocommit (the INSERT commits itself: one
    round trip, where BEGIN, INSERT and COMMIT were three) and without the
    pre-ping's SELECT 1 on every checkout: a connection found dead is replaced
    and the INSERT tried once more. SQLite has no round trips to save.

    ``async_commit`` (SIGNUP_ASYNC_COMMIT, off by default) answers before the
    commit is flushed to disk: a crash of the database server (not of the app)
    can then lose the sign-ups of its last fraction of a second, whose people were
    told to check their inbox. With 2 sync web workers the flush is what bounds
    the rate (README, Benchmarks)."""
    if engine.dialect.name != "postgresql":
        return engine
    kwargs: dict = {"poolclass": type(engine.pool)} if not hasattr(engine.pool, "size") else {
        "pool_size": 2, "max_overflow": 8}
    options = _options("-c jit=off" + (" -c synchronous_commit=off" if async_commit else ""))
    intake = create_engine(engine.url, pool_pre_ping=False, isolation_level="AUTOCOMMIT",
                           connect_args={"connect_timeout": max(1, int(connect_timeout)),
                                         "options": options}, **kwargs)
    # Whoever disposes of the app's engine disposes of this one with it.
    event.listen(engine, "engine_disposed", lambda _engine: intake.dispose())
    return intake


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations to the database at ``url``."""
    from alembic import command

    make_engine(url).dispose()  # creates the SQLite file's folder if needed
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The database's Alembic revision, or None when it has none (a new database)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url, immediate=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade_reporting(url: str) -> tuple[str | None, str | None]:
    """Upgrade to head; returns (revision before, revision after)."""
    before = current_revision(url)
    upgrade(url)
    return before, current_revision(url)


def sqlite_time(value: datetime) -> str:
    """A datetime as UTCDateTime stores it on SQLite (SQLAlchemy's DATETIME text,
    always with microseconds): the cursor compares these strings, so the form
    must be exactly that (tests/test_worker_batch.py checks it against SQLAlchemy)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


# -- leases: how every worker piece claims its rows ------------------------------

def skip_locked(q: Select, session: Session, of: Any = None) -> Select:
    """On PostgreSQL, rows another worker is claiming are skipped, not waited for;
    SQLite has a single writer, so there is nothing to skip."""
    if session.get_bind().dialect.name == "postgresql":
        return q.with_for_update(of=of, skip_locked=True)
    return q


def lease_free(lease_until: Any, held_at: datetime) -> ColumnElement[bool]:
    """Not leased, or leased by a worker whose lease ran out (it died or stalled)."""
    return or_(lease_until.is_(None), lease_until < held_at)


def claim(session: Session, q: Select, model: Any, **values: Any) -> list[int]:
    """Lease the rows ``q`` selects (by id): skip those another worker is taking,
    write ``values`` (the lease's owner and end, a state...) on the rest, commit."""
    ids = list(session.scalars(skip_locked(q, session, of=model)))
    if ids:
        session.execute(update(model).where(model.id.in_(ids)).values(**values))
    session.commit()
    return ids
