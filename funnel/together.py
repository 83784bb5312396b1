"""Independent reads of one page answered at the same time, all from one snapshot.

The dashboard asks about ten questions that do not depend on each other; asked
in turn, the page takes the sum of their times. On PostgreSQL each is asked on
its own connection in a thread, and every one of those transactions imports the
snapshot the page's own transaction exported (``pg_export_snapshot``), so the
figures agree with each other exactly as if one transaction had read them all.
SQLite (one file, mostly one process, one writer) answers them in turn on the
page's own session. No Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

# Two cores answer at most two at a time; a few more keep them busy while one
# waits on the disk, and keep one page from taking a dozen of the server's connections.
WORKERS = 4
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


def read_together(session: Session, sessions: sessionmaker[Session],
                  calls: Mapping[str, Callable[[Session], Any]]) -> dict[str, Any]:
    """{name: call(a session)} for every call; the slowest first, so list them that way."""
    if session.get_bind().dialect.name != "postgresql" or len(calls) < 2:
        return {name: call(session) for name, call in calls.items()}
    snapshot = session.scalar(text("SELECT pg_export_snapshot()"))
    # SET TRANSACTION SNAPSHOT takes no bind parameter: the id is checked instead.
    if not isinstance(snapshot, str) or not _SNAPSHOT_ID.match(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")

    def run(call: Callable[[Session], Any]) -> Any:
        with sessions() as s:
            s.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            s.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            # The page is already split across connections: PostgreSQL's own parallel
            # workers would each build the same hash tables again (a join's inner
            # side was read three times), tripling the CPU of the busiest parts.
            s.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
            try:
                return call(s)
            finally:
                s.rollback()

    # The exporting transaction (the page's session) stays open until every
    # import is done: it is only closed at the end of the request.
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(calls))) as pool:
        futures = {name: pool.submit(run, call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}
