"""Endpoints for the operator: liveness, readiness and Prometheus metrics.

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

from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from funnel.operations import health, metrics
from funnel.runtime import rt

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
        body = metrics.exposition(rt().sessions, rt().clock())
    except SQLAlchemyError:
        log.warning("metrics: the database is unreachable, backlog gauges left out")
        body = metrics.exposition_counters_only()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8",
                    headers={"Cache-Control": "no-store"})
