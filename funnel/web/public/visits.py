"""Page-view counting off the request path: views are buffered in the process
and written in one batch every ``VISIT_FLUSH_SECONDS`` and when the process
stops gracefully (atexit, and gunicorn's ``worker_exit`` hook in
``gunicorn.conf.py``). A crash (SIGKILL, power loss) loses at most the views of
the last interval; a graceful stop loses none."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from funnel.models import Visit

log = logging.getLogger(__name__)

# Every buffer in this process, so a server hook can flush them without the app.
_BUFFERS: weakref.WeakSet[VisitBuffer] = weakref.WeakSet()


class VisitBuffer:
    """Rows for the ``visit`` table, kept in memory until the next flush.

    The flusher thread is started lazily in the process that counts the first
    view: gunicorn forks its workers after the app is built, and a thread
    started before the fork would not exist in the workers.
    """

    def __init__(self, sessions: sessionmaker[Session], interval: float,
                 max_rows: int = 5000) -> None:
        self.sessions = sessions
        self.interval = interval
        self.max_rows = max_rows
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        _BUFFERS.add(self)

    def add(self, row: dict[str, Any]) -> None:
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            self._rows.append(row)
            waiting = len(self._rows)
            if waiting > self.max_rows * 10:
                del self._rows[:-self.max_rows * 10]  # the database away for long: newest kept
        if self.interval <= 0:
            self.flush()  # interval 0 writes at once
        elif waiting >= self.max_rows:
            # A flood: the flusher writes now rather than at its interval. Not in this
            # request: a batch of thousands (and, on SQLite, waiting for the other
            # process's write lock) would hold up this visitor and, on a sync worker,
            # every connection waiting behind it.
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        """Write what is buffered in one transaction; returns the rows written.
        On a database error the rows go back to the buffer for the next try."""
        with self._flush_lock:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                # On the connection, a plain executemany: the session's ORM bulk
                # path cost each web process about 5% of its time under load.
                with self.sessions() as s, s.begin():
                    s.connection().execute(insert(Visit), rows)
            except Exception as exc:
                # Usually the database being away: one line, not a traceback every 2 s.
                log.warning("could not write %d visits (%s); keeping them for the next flush",
                            len(rows), str(exc).splitlines()[0][:200])
                with self._lock:
                    # Keep the newest rows if the database stays away for long.
                    self._rows = (rows + self._rows)[-self.max_rows * 10:]
                return 0
            return len(rows)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._rows = []  # a forked child must not write its parent's views again
            self._stop = threading.Event()
            self._wake = threading.Event()
        if self.interval > 0:
            threading.Thread(target=self._run, args=(self._stop, self._wake), daemon=True,
                             name="visit-flusher").start()
        atexit.register(self.close)

    def _run(self, stop: threading.Event, wake: threading.Event) -> None:
        while True:
            wake.wait(self.interval)
            wake.clear()
            if stop.is_set():
                return
            self.flush()

    def close(self) -> None:
        """Stop the flusher and write what is left: the graceful-shutdown path."""
        self._stop.set()
        self._wake.set()
        self.flush()


def close_all() -> None:
    """Flush every buffer in this process: what the server's exit hooks call."""
    for buf in list(_BUFFERS):
        buf.close()


def worker_exit(_server: Any, _worker: Any) -> None:
    """gunicorn hook (``worker_exit = funnel.web.visits.worker_exit`` in its config):
    runs when a worker stops gracefully, including ``max_requests`` recycling."""
    close_all()
