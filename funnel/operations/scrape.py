"""What a Prometheus scrape of ``/metrics`` answers: the counters of every process
(``funnel.metrics``), then the backlog gauges. The gauges are not kept by any
process: they are read from the database at scrape time, so they are never stale.
"""

from __future__ import annotations

import os
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session, sessionmaker

from funnel.operations.health import backlog


class _BacklogCollector:
    def __init__(self, sessions: sessionmaker[Session], now: datetime) -> None:
        self.sessions = sessions
        self.now = now

    def collect(self):
        with self.sessions() as s:
            count, age = backlog(s, self.now)
        yield GaugeMetricFamily("funnel_due_backlog", "Subscribers with a step due now.",
                                value=count)
        yield GaugeMetricFamily("funnel_oldest_due_age_seconds",
                                "How late the oldest due step is.", value=age)


def exposition_counters_only() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def exposition(sessions: sessionmaker[Session], now: datetime) -> bytes:
    """The text a Prometheus scrape gets: counters of every process, then gauges."""
    gauges = CollectorRegistry()
    gauges.register(_BacklogCollector(sessions, now))
    backlog = generate_latest(gauges)  # first, so a database error skips the rest
    return exposition_counters_only() + backlog


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead web process's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
