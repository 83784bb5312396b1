"""Group commit for the sign-up intake: one writer thread per web process commits the
rows of several concurrent requests in one transaction, one flush to disk.

A request hands its row over and waits; it answers only once the transaction
holding its row is committed (``synchronous_commit`` stays on, so a crash loses
no sign-up that was answered), or raises the writer's error. With gunicorn's
threads, the requests arriving while one flush is under way share the next:
the flush, not the requests, was what bounded sign-ups (issue 28).

A batch the database refuses is written again row by row, so one bad row fails
only its own request. Used by ``actions.record_intake`` for an engine marked with
``group`` (runtime does so for PostgreSQL's intake engine); SIGNUP_GROUP_COMMIT=0
turns it off.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

MAX_BATCH = 256
# A writer idle this long ends its thread (the next sign-up starts another): apps
# made and dropped, as tests do, leave no threads behind.
IDLE_SECONDS = 10.0
# Longest a request waits for its row: past it, it fails (503) rather than hang.
WAIT_SECONDS = 30.0


class IntakeWriteError(RuntimeError):
    """The writer could not say the row was committed: the sign-up must not be answered."""


class _Pending:
    __slots__ = ("params", "done", "error")

    def __init__(self, params: Any) -> None:
        self.params = params
        self.done = threading.Event()
        self.error: BaseException | None = None


# write_many(engine, [params...]) commits them all in one transaction or raises;
# write_one(engine, params) is the single-row path (with its reconnect).
WriteMany = Callable[[Engine, Sequence[Any]], None]
WriteOne = Callable[[Engine, Any], None]


class IntakeWriter:
    def __init__(self, engine: Engine, write_many: WriteMany, write_one: WriteOne, *,
                 key: tuple[int, int], max_batch: int = MAX_BATCH) -> None:
        self.engine, self.key = engine, key
        self.write_many, self.write_one = write_many, write_one
        self.max_batch = max_batch
        self.queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self.batches = 0  # transactions committed: tests and the bench read it
        self.thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
        self.thread.start()

    def wait(self, item: _Pending, timeout: float | None = None) -> None:
        """Return once ``item``'s row is committed; raise if it was not."""
        timeout = WAIT_SECONDS if timeout is None else timeout
        if not item.done.wait(timeout):
            raise IntakeWriteError(f"the sign-up was not committed within {timeout:.0f} s")
        if item.error is not None:
            raise item.error

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with _LOCK:  # submit() puts under the same lock: nothing is left behind
                    if self.queue.empty():
                        _WRITERS.pop(self.key, None)
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                self.write_one(self.engine, batch[0].params)
            else:
                self.write_many(self.engine, [p.params for p in batch])
            self.batches += 1
        except Exception as exc:  # noqa: BLE001  (each request is told, none answered wrongly)
            if len(batch) == 1:
                batch[0].error = exc
            else:
                # Row by row: one bad row fails only its own request.
                log.warning("a batch of %d sign-ups failed (%s); writing them one by one",
                            len(batch), str(exc).splitlines()[0][:200] if str(exc) else exc)
                for item in batch:
                    try:
                        self.write_one(self.engine, item.params)
                    except Exception as one:  # noqa: BLE001
                        item.error = one
        except BaseException as exc:  # the thread is going away: nobody may wait forever
            for item in batch:
                item.error = IntakeWriteError(f"the sign-up writer stopped: {exc!r}")
                item.done.set()
            raise
        for item in batch:
            item.done.set()


_GROUPED: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
_WRITERS: dict[tuple[int, int], IntakeWriter] = {}
_LOCK = threading.Lock()


def group(engine: Engine) -> Engine:
    """Mark ``engine``'s intake rows to go through a writer thread."""
    _GROUPED[engine] = True
    return engine


def submit(engine: Engine, params: Any, write_many: WriteMany, write_one: WriteOne) -> bool:
    """Write ``params``' row through this process's writer for ``engine`` and return
    True once it is committed (raises if it was not); False when ``engine`` is not
    grouped. The writer is made on first use: after gunicorn's fork each worker
    starts its own thread."""
    if not _GROUPED.get(engine):
        return False
    item = _Pending(params)
    key = (id(engine), os.getpid())
    with _LOCK:
        w = _WRITERS.get(key)
        if w is None or not w.thread.is_alive():
            w = _WRITERS[key] = IntakeWriter(engine, write_many, write_one, key=key)
        w.queue.put(item)
    w.wait(item)
    return True


def writer(engine: Engine) -> IntakeWriter | None:
    """This process's live writer for ``engine``, if any (for tests and the bench)."""
    return _WRITERS.get((id(engine), os.getpid()))
