"""Prometheus metrics, safe under gunicorn's several processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (deploy/ sets it for the web processes and
the worker alike) every process writes its counters to files in that folder and
``/metrics`` adds them up, so one scrape of any web process sees the sign-ups of
all of them and the sends of the worker. What a scrape answers is put together
in ``funnel.operations.scrape``.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Histogram

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
