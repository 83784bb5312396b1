"""Wires the operator's side into the app: logs, health, metrics, a 503 page
when the database is away, and the transport timed and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import DBAPIError, OperationalError

from funnel.operations import logs, metrics
from funnel.transports import AuthError, Message, SendResult, TransientSendError, Transport

log = logging.getLogger(__name__)

# name: (default, type); all documented in README's configuration table.
SETTINGS: dict[str, tuple[Any, type]] = {
    "LOG_FORMAT": ("text", str),
    "LOG_LEVEL": ("INFO", str),
    "METRICS_TOKEN": ("", str),
    "READY_WORKER_MAX_AGE": (60.0, float),
    "SQLITE_BUSY_TIMEOUT": (5.0, float),
    "DATABASE_CONNECT_TIMEOUT": (5.0, float),
}


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (default, kind) in SETTINGS.items():
        raw = environ.get(name)
        out[name] = default if raw in (None, "") else kind(raw)
    out["LOG_FORMAT"] = str(out["LOG_FORMAT"]).lower()
    return out


class MeteredTransport:
    """Any transport, with each send timed and each message's outcome counted."""

    def __init__(self, inner: Transport, name: str) -> None:
        self.inner = inner
        self.name = name
        self.idempotent = inner.idempotent
        self.max_batch = inner.max_batch

    def send(self, messages: list[Message]) -> list[SendResult]:
        started = time.monotonic()
        try:
            results = self.inner.send(messages)
        except (TransientSendError, AuthError) as exc:
            self._count(exc.results)
            settled = {r.key for r in exc.results}
            unsettled = sum(1 for m in messages if m.key not in settled)
            kind = "retry" if isinstance(exc, TransientSendError) else "refused"
            metrics.SENDS.labels(transport=self.name, result=kind).inc(unsettled)
            raise
        finally:
            metrics.PROVIDER_SECONDS.labels(transport=self.name).observe(time.monotonic() - started)
        self._count(results)
        return results

    def _count(self, results: list[SendResult]) -> None:
        ok = sum(1 for r in results if r.ok)
        if ok:
            metrics.SENDS.labels(transport=self.name, result="sent").inc(ok)
        if len(results) - ok:
            metrics.SENDS.labels(transport=self.name, result="failed").inc(len(results) - ok)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _database_unavailable(exc: Exception):
    from funnel.web.errors import render_error

    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) \
            and not exc.connection_invalidated:
        raise exc  # a bug, not an outage: let the 500 handler have it
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    log.warning("database unavailable, answered 503: %s", reason)
    resp = render_error(503, "We can't reach our records right now. Please try again in a minute.")
    body, code = resp
    return body, code, {"Retry-After": "30"}


def init_app(app: Flask) -> None:
    from funnel.web import ops as ops_web

    logs.init_app(app)
    app.register_blueprint(ops_web.bp)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(DBAPIError, _database_unavailable)

    @app.after_request
    def _count_webhook_refusals(resp):
        from flask import request

        if request.endpoint == "webhooks.sendgrid" and resp.status_code >= 400:
            metrics.WEBHOOK_REFUSALS.labels(status=str(resp.status_code)).inc()
        return resp
