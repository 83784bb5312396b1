"""Fixtures: app, client, runner, db, outbox and a fixed clock.

Every test that uses the database runs twice: on SQLite and, when
FUNNEL_TEST_POSTGRES_URL is set, on PostgreSQL. With FUNNEL_REQUIRE_POSTGRES=1
(as .ci/run sets) a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import signal
import time
import weakref
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import jinja2
import jinja2.bccache
import pytest
from hypothesis import settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from funnel import create_app
from funnel import db as funnel_db
from funnel.db import make_engine, upgrade
from funnel.models import Base
from funnel.subscribers import intake
from tests import routing_cache
from tests.parallel import database_name, is_worker

# The admin tests' fixtures (admin, logged_in) live beside their helpers.
pytest_plugins = ["tests.admin_support"]

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TEST_SECRET = "test-secret-key-not-for-production"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


class Outbox:
    """The .eml files the outbox transport wrote, parsed with the email package."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def paths(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in self.paths()]

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages() if m["To"] == address]

    def wait_for(self, address: str, count: int = 1, seconds: float = 10.0
                 ) -> list[email.message.EmailMessage]:
        """The messages to ``address`` once there are ``count``: the worker sends them."""
        import time

        deadline = time.monotonic() + seconds
        while len(found := self.to(address)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(found) >= count, f"{len(found)} of {count} emails to {address} arrived"
        return found

    def __len__(self) -> int:
        return len(self.paths())

    @staticmethod
    def text(msg: email.message.EmailMessage) -> str:
        return msg.get_body(("plain",)).get_content()

    @staticmethod
    def html(msg: email.message.EmailMessage) -> str:
        return msg.get_body(("html",)).get_content()

    def link(self, msg: email.message.EmailMessage, kind: str) -> str:
        """The path of the first /KIND/… link in the plain-text part."""
        m = re.search(rf"https?://[^/\s]+(/{kind}/[A-Za-z0-9._\-]+)", self.text(msg))
        assert m, f"no {kind} link in:\n{self.text(msg)}"
        return m.group(1)


# -- databases ---------------------------------------------------------------

def _db_params() -> list:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "funnel.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_url() -> str:
    base = os.environ.get("FUNNEL_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("FUNNEL_REQUIRE_POSTGRES") == "1":
            pytest.fail("FUNNEL_REQUIRE_POSTGRES=1 but FUNNEL_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL not configured (set FUNNEL_TEST_POSTGRES_URL)")
    url = make_url(base)
    url = url.set(database=database_name(url.database))  # one database per xdist worker
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    return rendered


def _truncate_postgres(url: str) -> None:
    # DELETE on a few small tables is about ten times faster than TRUNCATE, which
    # makes new files for every table: about 0.1 s against 0.9 s a test. The
    # replica role skips the foreign keys and the kept-figure triggers, so the order
    # does not matter and a delete does not write tallies back.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql(";".join(f'DELETE FROM "{t.name}"' for t in Base.metadata.sorted_tables))
        used = conn.exec_driver_sql("SELECT sequencename FROM pg_sequences "
                                    "WHERE schemaname = 'public' AND last_value IS NOT NULL")
        for (sequence,) in used.all():
            conn.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')
    engine.dispose()


@pytest.fixture(params=_db_params())
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "funnel.db"
        shutil.copy(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("_postgres_url")
    _truncate_postgres(url)
    return url


# -- the app -----------------------------------------------------------------

# The test server's commits need not wait for the disk (4 ms each on this
# machine's disk, 0.3 ms without): every test starts from an empty database, and
# what a crash would lose is tested by killing our processes, not the server.
# Our engines keep PGOPTIONS (funnel.db), and so do the processes tests start.
os.environ.setdefault("PGOPTIONS", "-c synchronous_commit=off")

_ENGINES: weakref.WeakSet = weakref.WeakSet()


routing_cache.install()

# The same examples in every run, so a run that passed passes again and a failure can
# be repeated; no deadline (a shared machine slows an example, not the code).
# HYPOTHESIS_PROFILE=explore looks much further, with new examples each run.
settings.register_profile("suite", derandomize=True, deadline=None, database=None,
                          print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture(scope="session", autouse=True)
def _engines_recorded():
    """Every engine the app makes is recorded, so that its pooled connections can
    be closed at the end of each test (below)."""
    made = funnel_db.create_engine

    def recorded(*args, **kwargs):
        engine = made(*args, **kwargs)
        _ENGINES.add(engine)
        return engine

    funnel_db.create_engine = recorded
    yield
    funnel_db.create_engine = made


@pytest.fixture(autouse=True)
def _engines_closed(_engines_recorded, tmp_path):
    # The apps pool their connections as in production (a new connection for every
    # session made a worker pass three times slower); an app a test made and let go
    # must not keep server connections open into the next tests, nor its visit
    # buffer's thread writing after the test's files (tmp_path) are gone.
    from funnel.web.public import visits

    before = set(visits._BUFFERS)
    yield
    for buffer in set(visits._BUFFERS) - before:
        buffer.close()
    for engine in list(_ENGINES):
        engine.dispose()
    _ENGINES.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_config(db_url, tmp_path, clock) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": db_url,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "FUNNEL_BASE_URL": "http://localhost",
        "CLOCK": clock,
        # Generous for tests; test_signup's flood test tightens it.
        "RATELIMIT_SIGNUP": "1000 per minute",
    }


class _PageBytecode(jinja2.BytecodeCache):
    """The pages' templates compiled once for the whole run, not once per app
    (every app of the suite has the same Jinja settings)."""

    def __init__(self) -> None:
        self.made: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self.made:
            bucket.bytecode_from_string(self.made[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.made[bucket.key] = bucket.bytecode_to_string()


_PAGES = _PageBytecode()


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.jinja_env.bytecode_cache = _PAGES
    yield app
    visits = app.extensions.get("funnel_visits")
    if visits is not None:
        visits.close()  # its flush thread must not open connections after the test
    app.extensions["funnel"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """A session for arranging and checking state. On SQLite it does not take the
    write lock, so it can stay open while the app writes; call ``db.rollback()``
    to see the app's latest commits."""
    engine = make_engine(app.config["DATABASE_URL"], immediate=False)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


@pytest.fixture
def outbox(app) -> Outbox:
    return Outbox(Path(app.config["OUTBOX_DIR"]))


# -- making subscribers and running the worker -----------------------------------

@pytest.fixture
def make_subscriber(db, clock):
    """``make_subscriber(email, status="confirmed", **columns)``: a row as the app would
    have it, committed; a confirmed one is due for its first email now."""
    from funnel.core import lifecycle
    from funnel.models import Subscriber

    def make(email: str = "someone@example.com", status: str = lifecycle.CONFIRMED,
             **columns):
        confirmed = status == lifecycle.CONFIRMED
        values = {"timezone": "UTC", "created_at": clock.now,
                  "confirmed_at": clock.now if confirmed else None,
                  "next_due_at": clock.now if confirmed else None, **columns}
        sub = Subscriber(email=email, status=status, **values)
        db.add(sub)
        db.commit()
        return sub

    return make


@pytest.fixture
def run_worker(app, clock):
    """``run_worker()``: one worker pass at the test clock's time; returns its report.
    One worker for the whole test, as in production: its caches (the sequences'
    files, the composer's templates) live across passes."""
    from funnel.runtime import make_worker

    workers: list = []

    def run(now: datetime | None = None):
        if not workers:
            workers.append(make_worker(app.extensions["funnel"]))
        return workers[0].run_pass(now or clock.now)

    return run


# -- helpers -------------------------------------------------------------------

def csrf_token(client, path: str = "/admin/login") -> str:
    """The CSRF token of the client's session, as a form on ``path`` carries it (the
    public pages carry none: funnel.web.public.crossorigin guards the sign-up form)."""
    page = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token on the page"
    return m.group(1)


def post_signup(client, email: str, first_name: str = "", **fields):
    """Only the POST: its email is queued, not yet sent."""
    data = {"email": email, "first_name": first_name, **fields}
    return client.post("/free-plan", data=data)


def take_in(app):
    """The worker's first step on its next pass: the sign-ups the form stored become
    subscribers, consent records and queued confirmations (nothing is sent)."""

    return intake.take_intake(app.extensions["funnel"].sessions)


def taken_in(app, db, email: str, timeout: float = 10.0):
    """The worker's intake step, then the subscriber ``email`` once it exists: a live
    server's own worker may be taking the same row in at that moment (PostgreSQL
    skips the row it holds), so wait for its commit rather than race it."""
    import time

    from sqlalchemy import select

    from funnel.models import Subscriber

    take_in(app)
    deadline = time.monotonic() + timeout
    while True:
        db.rollback()
        sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
        if sub is not None or time.monotonic() > deadline:
            return sub
        time.sleep(0.05)


def deliver(app):
    """What the embedded worker of ``make run`` does within a second of a sign-up:
    send the queued system mail (confirmations), and nothing of the drip."""
    from funnel.runtime import make_worker

    return make_worker(app.extensions["funnel"]).run_pass(drip=False)


def sign_up(client, email: str, first_name: str = "", **fields):
    """Sign up, then let the worker send the email it queued."""
    resp = post_signup(client, email, first_name, **fields)
    deliver(client.application)
    return resp
def press_confirm(client, path: str):
    """Open a confirmation link and press its button, as a person does."""
    client.get(path)
    return client.post(path, data={"csrf_token": csrf_token(client)})


def sign_up_and_confirm(client, outbox: Outbox, email: str, first_name: str = "", **fields):
    resp = sign_up(client, email, first_name, **fields)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    # Sent by this thread's worker pass, or by a live server's embedded one.
    confirm = outbox.link(outbox.wait_for(email)[-1], "confirm")
    # Opening the link shows a button; pressing it (a POST) confirms.
    assert client.get(confirm).status_code == 200
    resp = client.post(confirm, data={"csrf_token": csrf_token(client)})
    assert resp.status_code == 200
    return resp


# -- a real browser ------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def live_server(app):
    """The app served on a free localhost port in a thread; yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["FUNNEL_BASE_URL"] = base
    # Links in emails are built from the runtime's settings: point them here too.
    rt = app.extensions["funnel"]
    rt.composer.links.base_url = base
    # Workers made afterwards (make_worker) build their own composer from these.
    from dataclasses import replace

    rt.settings = replace(rt.settings, base_url=base)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Like `make run`'s embedded worker, woken by a sign-up or a test send: it sends
    # the queued system mail (confirmations) and admins' tests at once. The drip
    # stays the test's to run.
    from funnel.runtime import make_worker

    stop = threading.Event()

    def mailer() -> None:
        worker = make_worker(rt)
        while not stop.is_set():
            if rt.wake.wait(0.1):
                rt.wake.clear()
                worker.run_pass(drip=False)

    mail_thread = threading.Thread(target=mailer, daemon=True)
    mail_thread.start()
    yield base
    stop.set()
    mail_thread.join(5)
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="session")
def _browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(_browser):
    """A fresh browser tab (its own cookies) in headless Chromium."""
    context = _browser.new_context()
    page = context.new_page()
    yield page
    context.close()


AXE = Path(__file__).resolve().parent.parent / ".npm" / "node_modules" / "axe-core" / "axe.min.js"


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical accessibility violations on the open page."""
    import json

    if not AXE.exists():
        pytest.fail(f"axe-core is missing ({AXE}); `make test` installs it "
                    "(npm install --no-save --prefix .npm axe-core@4)")
    # Evaluated rather than added as a <script>: the pages' Content-Security-Policy
    # (rightly) blocks scripts without its nonce, and Playwright's evaluate is exempt.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;window.axe = axe;")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + json.dumps([n["target"] for n in v["nodes"]][:5])
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]


# -- markers -------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    """Mark by what a test uses, so `-m "not browser"` and `-m postgresql` select right."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"page", "_browser"}:
            item.add_marker(pytest.mark.browser)


# -- CI guard ------------------------------------------------------------------

_postgres_passed = 0


def pytest_runtest_logreport(report):
    # Under xdist the controller gets every worker's reports through this hook too,
    # so the count it keeps covers the whole run.
    global _postgres_passed
    if report.when == "call" and report.passed and "[postgresql" in report.nodeid:
        _postgres_passed += 1


def pytest_sessionfinish(session, exitstatus):
    """With FUNNEL_REQUIRE_POSTGRES=1, a run in which no PostgreSQL test passed fails.
    Judged once, by the controller (or the plain run): one xdist worker may well have
    been handed only SQLite tests."""
    if is_worker(session.config):
        return
    if os.environ.get("FUNNEL_REQUIRE_POSTGRES") == "1" and exitstatus == 0 and not _postgres_passed:
        print("\nFUNNEL_REQUIRE_POSTGRES=1 but no PostgreSQL test passed")
        session.exitstatus = 1



def catch_holding(procs, held, deadline):
    """Freeze each running worker in turn; return the first caught holding a batch,
    still frozen. Any of them will do: a fixed one may already have finished its share."""
    while True:
        running = [p for p in procs if p.poll() is None]
        assert running and time.monotonic() < deadline, "no worker was caught holding work"
        for p in running:
            p.send_signal(signal.SIGSTOP)
            if held(p.pid) > 0:
                return p
            p.send_signal(signal.SIGCONT)
        time.sleep(0.002)
