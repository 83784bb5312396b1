"""Page views are counted off the request path: buffered, written in batches and
at a graceful shutdown; pages are served from a cache but stay per-visitor where
they must (the sign-up form's CSRF token, the UTM values carried along)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from funnel import create_app
from funnel.models import Subscriber, Visit
from tests.conftest import take_in

ROOT = Path(__file__).resolve().parent.parent


def visit_rows(db) -> list[tuple[str, str | None, str | None]]:
    db.rollback()
    return sorted(db.execute(select(Visit.page, Visit.utm_source, Visit.referrer_host)).all(),
                  key=repr)


@pytest.fixture
def slow_flush(app_config):
    """An app whose buffer only writes when flushed or closed."""
    app = create_app({**app_config, "VISIT_FLUSH_SECONDS": 3600})
    yield app
    app.extensions["funnel_visits"].close()
    app.extensions["funnel"].engine.dispose()


def test_views_are_written_at_the_flush_not_in_the_request(slow_flush, db):
    client = slow_flush.test_client()
    for _ in range(3):
        client.get("/?utm_source=strava")
    client.get("/free-plan", headers={"Referer": "https://www.parkrun.org.uk/x"})
    assert visit_rows(db) == []  # nothing written while serving
    assert slow_flush.extensions["funnel_visits"].flush() == 4
    assert visit_rows(db) == sorted(
        [("article", "strava", None)] * 3 + [("landing", None, "www.parkrun.org.uk")], key=repr)
    assert slow_flush.extensions["funnel_visits"].flush() == 0  # nothing counted twice
    assert len(visit_rows(db)) == 4


def test_the_background_flush_writes_within_its_interval(app_config, db):
    app = create_app({**app_config, "VISIT_FLUSH_SECONDS": 0.2})
    try:
        client = app.test_client()
        for _ in range(5):
            client.get("/")
        deadline = time.monotonic() + 10
        while len(visit_rows(db)) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r[0] for r in visit_rows(db)] == ["article"] * 5
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()
    assert len(visit_rows(db)) == 5


def test_the_dashboard_shows_buffered_views_at_once(slow_flush, db):
    client = slow_flush.test_client()
    client.get("/")
    client.get("/")
    # The admin login page is in the admin blueprint too: any admin page flushes.
    client.get("/admin/")
    assert len(visit_rows(db)) == 2


def _run(code: str, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "t", "VISIT_FLUSH_SECONDS": "3600"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_normal_exit_writes_what_is_buffered(db_url, db):
    done = _run("""
        from funnel import create_app
        c = create_app().test_client()
        for _ in range(7):
            c.get("/free-plan?utm_source=ig")
        assert c.application.extensions["funnel_visits"].pending() == 7
    """, db_url)
    assert done.returncode == 0, done.stderr
    assert visit_rows(db) == [("landing", "ig", None)] * 7


def test_a_crash_loses_only_what_was_buffered(db_url, db):
    # The negative control for the README's promise: a process killed outright
    # loses the views of its last interval, and nothing older.
    done = _run("""
        import os, signal
        from funnel import create_app
        app = create_app()
        c = app.test_client()
        c.get("/")
        app.extensions["funnel_visits"].flush()
        c.get("/")
        c.get("/")
        os.kill(os.getpid(), signal.SIGKILL)
    """, db_url)
    assert done.returncode == -signal.SIGKILL
    assert visit_rows(db) == [("article", None, None)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_gunicorn_graceful_stop_writes_every_workers_views(db_url, db, tmp_path):
    port = _free_port()
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("from funnel.web.public.visits import worker_exit  # noqa: F401\n")
    env = {**os.environ, "DATABASE_URL": db_url, "SECRET_KEY": "t", "VISIT_FLUSH_SECONDS": "3600"}
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", str(conf), "-w", "2",
         "-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/check-your-inbox", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        for i in range(40):
            urllib.request.urlopen(f"{base}/?utm_source=s{i % 2}", timeout=5).read()
        assert visit_rows(db) == []
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    rows = visit_rows(db)
    assert len(rows) == 40
    assert sorted({r[1] for r in rows}) == ["s0", "s1"]


def test_the_cached_landing_page_works_for_each_visitor(app, db):
    first, second = app.test_client(), app.test_client()
    pages = [c.get("/free-plan?utm_source=fb").get_data(as_text=True) for c in (first, second)]
    assert pages[0] == pages[1]  # the second came from the cache, and nothing is per visitor
    assert 'name="utm_source" type="hidden" value="fb"' in pages[0]
    for i, c in enumerate((first, second)):
        resp = c.post("/free-plan", data={"email": f"cache{i}@example.com", "utm_source": "fb"},
                      headers={"Sec-Fetch-Site": "same-origin"})
        assert resp.status_code == 303
    take_in(app)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 2


def test_cached_pages_keep_what_each_query_string_carries(client):
    a = client.get("/?utm_source=a&utm_campaign=spring").get_data(as_text=True)
    b = client.get("/?utm_source=b").get_data(as_text=True)
    assert "utm_source=a" in a and "utm_campaign=spring" in a
    assert "utm_source=b" in b and "utm_source=a" not in b
    again = client.get("/?utm_source=a&utm_campaign=spring").get_data(as_text=True)
    assert again == a
    hostile = client.get("/free-plan?utm_source=%22%3E%3Cscript%3E").get_data(as_text=True)
    assert '"><script>' not in hostile and "&#34;&gt;&lt;script&gt;" in hostile


def test_a_flood_is_written_in_the_background_not_in_a_visitors_request(slow_flush, db_url, db):
    from sqlalchemy import create_engine, text

    buffer = slow_flush.extensions["funnel_visits"]
    buffer.max_rows = 5  # a flood, in small
    client = slow_flush.test_client()
    client.get("/")  # the page rendered and the flusher started
    engine = create_engine(db_url)
    blocker = engine.connect()
    try:
        # Another process in the middle of a long write: the batch has to wait for it.
        if db_url.startswith("sqlite"):
            blocker.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            blocker.begin()
            blocker.execute(text("LOCK TABLE visit IN SHARE ROW EXCLUSIVE MODE"))
        started = time.monotonic()
        for _ in range(12):
            assert client.get("/?utm_source=flood").status_code == 200
        assert time.monotonic() - started < 2  # nobody waited for the lock
    finally:
        blocker.rollback()
        blocker.close()
        engine.dispose()
    deadline = time.monotonic() + 15
    while len(visit_rows(db)) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(visit_rows(db)) >= 10  # written without waiting for the hour's flush
    buffer.close()
    assert len(visit_rows(db)) == 13
