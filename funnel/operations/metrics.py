"""Prometheus metrics, safe under gunicorn's several processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (deploy/ sets it for the web processes and
the worker alike) every process writes its counters to files in that folder and
``/metrics`` adds them up, so one scrape of any web process sees the sign-ups of
all of them and the sends of the worker. The backlog gauges are not kept by any
process: they are read from the database at scrape time, so they are never stale.
"""

from __future__ import annotations

import os
from datetime import datetime

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session, sessionmaker

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Each process creates its files here as soon as the counters exist.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

SIGNUPS = Counter("funnel_signups_total", "Sign-ups accepted (pending confirmation).")
CONFIRMATIONS = Counter("funnel_confirmations_total", "Addresses confirmed (double opt-in).")
SENDS = Counter("funnel_sends_total", "Emails handed to the transport, by outcome.",
                ["transport", "result"])
PROVIDER_EVENTS = Counter("funnel_provider_events_total",
                          "Provider webhook events recorded (each counted once), by kind.",
                          ["kind"])
WEBHOOK_REFUSALS = Counter("funnel_webhook_refusals_total",
                           "Webhook requests refused, by HTTP status.", ["status"])
PROVIDER_SECONDS = Histogram(
    "funnel_provider_request_seconds", "Time of one request to the mail provider.",
    ["transport"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

class _BacklogCollector:
    def __init__(self, sessions: sessionmaker[Session], now: datetime) -> None:
        self.sessions = sessions
        self.now = now

    def collect(self):
        from funnel.operations.health import backlog

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
