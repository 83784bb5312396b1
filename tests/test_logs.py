"""Logs: one line per event with the request id; text or JSON; no token, address or name."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from tests.conftest import csrf_token, sign_up


@pytest.fixture
def app_config(app_config):
    return {**app_config, "LOG_FORMAT": "json"}


def _json_lines(err: str) -> list[dict]:
    out = []
    for line in err.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_request_id_is_echoed_and_taken_from_the_proxy(client):
    resp = client.get("/healthz")
    rid = resp.headers["X-Request-ID"]
    assert len(rid) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != rid
    assert client.get("/healthz", headers={"X-Request-ID": "nginx-0123456789abcdef"}
                      ).headers["X-Request-ID"] == "nginx-0123456789abcdef"
    # Anything that is not shaped like an id is replaced, never echoed into logs.
    evil = "x\nFAKE LOG LINE"
    assert client.get("/healthz", headers={"X-Request-ID": evil.replace("\n", " ")}
                      ).headers["X-Request-ID"] != evil


def test_json_lines_carry_the_request_id_and_no_personal_data(client, capsys, db_url, outbox):
    if not db_url.startswith("sqlite"):
        pytest.skip("uses SQLite's lock to make a request fail")
    assert sign_up(client, "secret.person@example.com", "Gwendolyn").status_code == 303
    token = csrf_token(client)  # the landing page itself needs no database (cached)
    capsys.readouterr()
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        # A sign-up must write: with the database locked it fails, and is logged.
        resp = client.post("/free-plan?utm_source=secret.person@example.com", data={
            "email": "secret.person@example.com", "first_name": "Gwendolyn",
            "csrf_token": token})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert resp.status_code == 503
    err = capsys.readouterr().err
    lines = _json_lines(err)
    assert lines, err
    mine = [ln for ln in lines if ln.get("request_id") == resp.headers["X-Request-ID"]]
    assert mine and mine[0]["level"] in ("WARNING", "ERROR"), lines
    assert "database" in mine[0]["message"]
    assert "secret.person" not in err and "Gwendolyn" not in err


def test_development_server_access_lines_lose_their_tokens(app, capsys):
    # werkzeug writes one line per request through this logger.
    logging.getLogger("werkzeug").info(
        '127.0.0.1 - - "GET /confirm/eyJhbGciOi.abc-DEF_123 HTTP/1.1" 200 -')
    logging.getLogger("werkzeug").info(
        '127.0.0.1 - - "POST /preferences/Zm9vYmFy.x/erase?email=a@b.co HTTP/1.1" 303 -')
    err = capsys.readouterr().err
    assert "/confirm/[token]" in err and "eyJhbGciOi" not in err
    assert "/preferences/[token]/erase" in err and "a@b.co" not in err


def test_text_is_the_default(app_config, capsys):
    from funnel import create_app

    config = dict(app_config)
    config.pop("LOG_FORMAT")
    app = create_app(config)
    try:
        logging.getLogger("funnel.test").warning("hello %s", "there")
        err = capsys.readouterr().err
        line = next(ln for ln in err.splitlines() if "hello there" in ln)
        assert "WARNING funnel.test [req -]" in line and not line.startswith("{")
    finally:
        app.extensions["funnel"].engine.dispose()


def test_worker_errors_name_the_subscriber_by_public_id(app, client, runner, db, capsys, tmp_path):
    """A step that cannot be rendered is logged with the subscriber's opaque id."""
    from sqlalchemy import select

    from funnel.models import Subscriber
    from tests.conftest import Outbox, sign_up_and_confirm

    outbox = Outbox(tmp_path / "outbox")
    sign_up_and_confirm(client, outbox, "hidden.name@example.com", "Bartholomew")
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "hidden.name@example.com"))
    # Break the plan's first email for this run only.
    rt = app.extensions["funnel"]
    from funnel.core.sequence import load_sequence

    seq = load_sequence(rt.settings.emails_dir)
    first = seq.steps[0]
    broken = tmp_path / "emails"
    import shutil

    shutil.copytree(rt.settings.emails_dir, broken)
    path = next(p for p in (broken / "sequences" / "plan").iterdir() if first.slug in p.read_text())
    path.write_text(path.read_text() + "\n{{ this is not valid }\n")
    app.config["EMAILS_DIR"] = str(broken)
    from dataclasses import replace

    rt.settings = replace(rt.settings, emails_dir=str(broken))
    capsys.readouterr()
    result = runner.invoke(args=["worker", "--once"])
    err = result.output + capsys.readouterr().err
    assert sub.public_id in err, err
    assert "hidden.name" not in err and "Bartholomew" not in err
