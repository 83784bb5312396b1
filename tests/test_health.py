"""/healthz, /readyz and `flask --app funnel status`: database, migrations, a live worker."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from funnel.models import AppState
from funnel.operations.health import HEARTBEAT_KEY

METRICS_TOKEN = "operator-token-for-the-details"
OPERATOR = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "READY_WORKER_MAX_AGE": 60, "METRICS_TOKEN": METRICS_TOKEN}


def _beat(db, age_seconds: float, name: str = "host:1:abc") -> None:
    at = datetime.now(UTC) - timedelta(seconds=age_seconds)
    db.merge(AppState(key=HEARTBEAT_KEY, value=json.dumps({"at": at.isoformat(), "worker": name})))
    db.commit()


def test_healthz_needs_nothing_but_the_process(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_not_ready_until_a_worker_has_run(client, runner):
    resp = client.get("/readyz", headers=OPERATOR)
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["ready"] is False
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
    assert any("no worker has ever run" in r for r in body["reasons"])

    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    resp = client.get("/readyz", headers=OPERATOR)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ready"] is True
    assert "reasons" not in resp.get_json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}],
                         ids=["no token", "wrong token"])
def test_a_stranger_learns_only_ready_or_not(client, db, headers):
    _beat(db, 61, name="probe-host.internal:4242:abc")
    resp = client.get("/readyz", headers=headers)
    assert resp.status_code == 503
    assert resp.get_json() == {"ready": False}  # no host, PID, database kind or migration
    assert b"probe-host" not in resp.data and b"postgresql" not in resp.data
    _beat(db, 0, name="probe-host.internal:4242:abc")
    resp = client.get("/readyz", headers=headers)
    assert (resp.status_code, resp.get_json()) == (200, {"ready": True})
    detailed = client.get("/readyz", headers=OPERATOR).get_json()
    assert "probe-host.internal:4242" in detailed["checks"]["worker"]["detail"]


def test_a_worker_not_seen_for_too_long_is_not_ready(client, db):
    _beat(db, 30)
    assert client.get("/readyz", headers=OPERATOR).status_code == 200
    _beat(db, 61)
    resp = client.get("/readyz", headers=OPERATOR)
    assert resp.status_code == 503
    [reason] = resp.get_json()["reasons"]
    assert reason.startswith("worker: last seen 61 s ago") and "60 s allowed" in reason


def test_migrations_behind_the_code_are_not_ready(client, db):
    _beat(db, 0)
    [head] = db.scalars(text("SELECT version_num FROM alembic_version")).all()
    db.execute(text("UPDATE alembic_version SET version_num = 'old'"))
    db.commit()
    try:
        resp = client.get("/readyz", headers=OPERATOR)
    finally:  # the PostgreSQL test database is shared by the whole run
        db.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        db.commit()
    assert resp.status_code == 503
    [reason] = resp.get_json()["reasons"]
    assert "database at old" in reason and "db upgrade" in reason


def test_a_locked_sqlite_database_is_reported_quickly(client, db, db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite locking; the PostgreSQL outage is in test_outage.py")
    _beat(db, 0)
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        resp = client.get("/readyz", headers=OPERATOR)
        elapsed = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert resp.status_code == 503
    assert "database is locked" in resp.get_json()["reasons"][0]
    assert elapsed < 3
    assert client.get("/readyz", headers=OPERATOR).status_code == 200  # and back once the lock is gone


def test_status_command_prints_the_same_facts(runner, db, clock):
    result = runner.invoke(args=["status"])
    assert result.exit_code == 1
    assert "database    ok" in result.output
    assert "worker      NOT READY  no worker has ever run" in result.output
    _beat(db, 5)
    result = runner.invoke(args=["status"])
    assert result.exit_code == 0, result.output
    assert "worker      ok" in result.output and "last seen 5 s ago" in result.output
    assert "due now     0" in result.output
