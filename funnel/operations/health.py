"""Is this installation ready to serve? Database, migrations and a live worker.

The same facts feed ``/readyz`` (JSON) and ``flask --app funnel status`` (text).
The worker proves it is alive with a heartbeat row in ``app_state``, written at
most once every ``HEARTBEAT_EVERY`` seconds so it costs next to nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from funnel.models import AppState, Subscriber

HEARTBEAT_KEY = "worker_heartbeat"
HEARTBEAT_EVERY = 10.0  # seconds between two heartbeat writes of one worker
# How long a readiness probe may wait for SQLite's write lock before saying so.
_SQLITE_PROBE_MS = 500


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _wall_now() -> datetime:
    # Real time even when the worker runs with --now: readiness is about now.
    return datetime.now(UTC)


class Heartbeat:
    """Records "a worker was here" at most every ``every`` seconds."""

    def __init__(self, sessions: sessionmaker[Session], name: str,
                 every: float = HEARTBEAT_EVERY) -> None:
        self.sessions = sessions
        self.name = name
        self.every = every
        self._last = float("-inf")

    def beat(self, force: bool = False) -> bool:
        """Write the heartbeat if it is due. Never raises: a database that is away
        is the worker loop's business, not the heartbeat's."""
        if not force and time.monotonic() - self._last < self.every:
            return False
        value = json.dumps({"at": _wall_now().isoformat(), "worker": self.name})
        try:
            with self.sessions() as s:
                row = s.get(AppState, HEARTBEAT_KEY)
                if row is None:
                    s.add(AppState(key=HEARTBEAT_KEY, value=value))
                else:
                    row.value = value
                s.commit()
        except IntegrityError:  # another worker inserted it first; next beat updates
            return False
        except SQLAlchemyError:
            return False
        self._last = time.monotonic()
        return True


def last_heartbeat(session: Session) -> tuple[datetime, str] | None:
    row = session.get(AppState, HEARTBEAT_KEY)
    if row is None:
        return None
    data = json.loads(row.value)
    return datetime.fromisoformat(data["at"]), data.get("worker", "?")


def _migration_heads(engine: Engine, conn) -> tuple[set[str], set[str]]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from funnel.db import alembic_config

    url = engine.url.render_as_string(hide_password=False)
    script = ScriptDirectory.from_config(alembic_config(url))
    current = set(MigrationContext.configure(conn).get_current_heads())
    return current, set(script.get_heads())


def checks(engine: Engine, worker_max_age: float, busy_ms: int = 5000) -> list[Check]:
    """Database, migrations and worker, each with a sentence saying why not."""
    try:
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            raw = conn.connection.dbapi_connection
            assert raw is not None  # a checked-out connection always has one
            if sqlite:
                # Readers never wait in WAL mode; our engine begins every transaction
                # by taking the write lock, so this first statement is the probe that
                # shows whether a page that writes (most do) could get through now.
                raw.execute(f"PRAGMA busy_timeout={_SQLITE_PROBE_MS}")
            try:
                conn.execute(text("SELECT 1"))
                current, heads = _migration_heads(engine, conn)
                with Session(bind=conn) as s:
                    beat = last_heartbeat(s)
                conn.rollback()
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={busy_ms}")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return [
            Check("database", False, f"cannot use the database: {reason}"),
            Check("migrations", False, "unknown: the database is unreachable"),
            Check("worker", False, "unknown: the database is unreachable"),
        ]
    out = [Check("database", True, f"reachable ({engine.dialect.name})")]
    if current == heads:
        out.append(Check("migrations", True, f"at head {', '.join(sorted(heads))}"))
    else:
        out.append(Check("migrations", False,
                         f"database at {', '.join(sorted(current)) or 'nothing'}, code expects "
                         f"{', '.join(sorted(heads))}: run `flask --app funnel db upgrade`"))
    if beat is None:
        out.append(Check("worker", False, "no worker has ever run against this database"))
    else:
        at, name = beat
        age = (_wall_now() - at).total_seconds()
        ok = age <= worker_max_age
        out.append(Check("worker", ok, f"last seen {age:.0f} s ago ({name})"
                         + ("" if ok else f", more than the {worker_max_age:g} s allowed")))
    return out


def backlog(session: Session, now: datetime) -> tuple[int, float]:
    """How many subscribers have a step due, and how late the oldest one is (s)."""
    count, oldest = session.execute(
        select(func.count(), func.min(Subscriber.next_due_at)).where(Subscriber.next_due_at <= now)
    ).one()
    if oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite hands back naive UTC for an aggregate
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (now - oldest).total_seconds())


def as_json(results: list[Check]) -> dict:
    ready = all(c.ok for c in results)
    body: dict = {"ready": ready, "checks": {c.name: asdict(c) for c in results}}
    if not ready:
        body["reasons"] = [f"{c.name}: {c.detail}" for c in results if not c.ok]
    return body
