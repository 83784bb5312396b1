"""Where an admin page's time goes: its SQL statements (timed by SQLAlchemy's
cursor events) and, on request, a cProfile of its Python.

Used by bench/bench_million_send.py (``--queries``, ``--cprofile``)."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event


class QueryClock:
    """Sums each statement's time under the page being loaded (``page(label)``)."""

    def __init__(self, engine: Engine) -> None:
        self.label: str | None = None
        self.loads: dict[str, int] = defaultdict(int)
        self.spent: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self.label is not None:
            took = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
            self.spent[self.label][" ".join(statement.split())].append(took)

    @contextmanager
    def page(self, label: str) -> Iterator[None]:
        self.label = label
        self.loads[label] += 1
        try:
            yield
        finally:
            self.label = None

    def report(self, label: str, top: int = 5) -> list[str]:
        """The statements taking most of a load, as ``ms per load, calls per load, SQL``."""
        loads = max(self.loads[label], 1)
        rows = sorted(self.spent[label].items(), key=lambda kv: -sum(kv[1]))[:top]
        total = sum(sum(v) for v in self.spent[label].values()) * 1000 / loads
        out = [f"    SQL {total:.1f} ms a load in {sum(len(v) for v in self.spent[label].values()) / loads:.0f}"
               " statements; the top ones (ms a load, calls a load):"]
        for sql, times in rows:
            out.append(f"    {sum(times) * 1000 / loads:7.1f} ms {len(times) / loads:5.1f}x  {sql[:150]}")
        return out


class PageProfiles:
    """One cProfile per page label, accumulated over its loads."""

    def __init__(self, labels: set[str]) -> None:
        self.labels = labels
        self.profiles: dict[str, cProfile.Profile] = {}

    @contextmanager
    def page(self, label: str) -> Iterator[None]:
        if label not in self.labels:
            yield
            return
        prof = self.profiles.setdefault(label, cProfile.Profile())
        prof.enable()
        try:
            yield
        finally:
            prof.disable()

    def report(self, label: str, top: int = 15) -> str:
        if label not in self.profiles:
            return ""
        out = io.StringIO()
        pstats.Stats(self.profiles[label], stream=out).sort_stats("cumulative").print_stats(top)
        return out.getvalue()
