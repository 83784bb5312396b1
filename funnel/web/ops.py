"""The operator's side in the app: logs, a 503 page when the database is away,
and the endpoints for liveness, readiness and Prometheus metrics.

``/healthz`` only proves the process answers (no database), so a load balancer
does not restart web processes because the database is away. ``/readyz`` says
whether this installation can do its job: to anyone only ready or not, and why
not (database kind, migration, worker host and PID) only to the bearer of
``METRICS_TOKEN``. ``/metrics`` is not public: it answers only that bearer
token, else 404.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from funnel import metrics
from funnel.operations import health, logs, scrape
from funnel.runtime import rt
from funnel.web.errors import render_error

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    cfg = current_app.config
    results = health.checks(rt().engine, float(cfg["READY_WORKER_MAX_AGE"]),
                            busy_ms=int(float(cfg["SQLITE_BUSY_TIMEOUT"]) * 1000))
    body = health.as_json(results)
    if not _has_metrics_token():
        body = {"ready": body["ready"]}  # a stranger learns nothing about the setup
    resp = jsonify(body)
    resp.status_code = 200 if body["ready"] else 503
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _has_metrics_token() -> bool:
    token = current_app.config.get("METRICS_TOKEN") or ""
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@bp.get("/metrics")
def metrics_view():
    if not _has_metrics_token():
        abort(404)  # not even saying that something is here
    try:
        body = scrape.exposition(rt().sessions, rt().clock())
    except SQLAlchemyError:
        log.warning("metrics: the database is unreachable, backlog gauges left out")
        body = scrape.exposition_counters_only()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


def _database_unavailable(exc: Exception):
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError) \
            and not exc.connection_invalidated:
        raise exc  # a bug, not an outage: let the 500 handler have it
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    log.warning("database unavailable, answered 503: %s", reason)
    body, code = render_error(503, "We can't reach our records right now. Please try again in a minute.")
    return body, code, {"Retry-After": "30"}


def _count_webhook_refusals(resp: Response) -> Response:
    if request.endpoint == "webhooks.sendgrid" and resp.status_code >= 400:
        metrics.WEBHOOK_REFUSALS.labels(status=str(resp.status_code)).inc()
    return resp


def init_app(app: Flask) -> None:
    logs.init_app(app)
    app.register_blueprint(bp)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(DBAPIError, _database_unavailable)
    app.after_request(_count_webhook_refusals)
