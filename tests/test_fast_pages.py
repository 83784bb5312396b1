"""The article and the landing page are answered without Flask's request handling
(funnel/web/fastpages.py), and a visitor cannot tell: the same bytes, the same
headers, a sign-up form that works, the visit counted with the same source."""

from __future__ import annotations

import itertools
import random
import re
import secrets
import time

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from funnel import create_app
from funnel.models import Subscriber, Visit
from funnel.transports.outbox import OutboxTransport
from tests.conftest import take_in

LONG = "x" * 150
# (path and query, request headers): with and without a source, UTM values long
# and hostile, unknown and repeated arguments, broken encodings, cookies.
REQUESTS = [
    ("/", {}),
    ("/?utm_source=strava&utm_medium=social&utm_campaign=spring&utm_term=t&utm_content=c", {}),
    (f"/?utm_source={LONG}&utm_campaign=%E2%9C%93", {}),
    ("/", {"Referer": "https://www.parkrun.org.uk/events/x?name=pat"}),
    ("/?ref=strava.com", {"Referer": "http://localhost/free-plan"}),
    ("/?fbclid=abc&utm_source=fb&utm_source=ig", {}),
    ("/?utm_source=%22%3E%3Cscript%3E", {}),
    ("/?utm_source=%FF%FE", {}),
    ("/", {"Cookie": "_ga=GA1.2.3; session=not-a-session"}),
    ("/free-plan", {}),
    ("/free-plan?utm_source=talk&utm_medium=qr", {"X-Request-ID": "req-from-nginx-1234"}),
    ("/free-plan?via=article&ref=news.ycombinator.com&utm_source=hn",
     {"Referer": "http://localhost/?utm_source=hn"}),
    ("/free-plan?via=elsewhere", {"Referer": "https://duckduckgo.com/"}),
    (f"/free-plan?utm_campaign={LONG}&gclid=1", {}),
    ("/free-plan", {"Cookie": "_ga=GA1.2.3"}),
    ("/free-plan", {"Cookie": "session=eyJjc3JmX3Rva2VuIjoiMSJ9.tampered.sig"}),
    ("/free-plan", {"Cookie": "RETURNING"}),  # the session cookie of an earlier visit
]


@pytest.fixture
def app_config(app_config):
    return {**app_config, "VISIT_FLUSH_SECONDS": 3600}


def _seeded(monkeypatch):
    """Every random and time-dependent value the same for the next request."""
    counter = itertools.count()
    monkeypatch.setattr("os.urandom", lambda n: bytes([next(counter) % 256]) * n)
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: f"nonce{next(counter)}")
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.0)
    random.seed(7)


class Watched:
    """The app with a count of the requests that reached Flask."""

    def __init__(self, app) -> None:
        self.app = app
        self.layer = app.extensions["funnel_fastpages"]
        self.flask_paths: list[str] = []
        inner = self.layer.wsgi_app

        def counting(environ, start_response):
            self.flask_paths.append(environ["PATH_INFO"])
            return inner(environ, start_response)

        self.layer.wsgi_app = counting
        self.flask_only = Client(counting, use_cookies=False)  # Flask's own answer, the layer skipped
        self.served = Client(app, use_cookies=False)  # through the layer, as gunicorn calls it

    @property
    def flask_calls(self) -> int:
        return len(self.flask_paths)

    def visits(self) -> list[tuple]:
        buffer = self.app.extensions["funnel_visits"]
        buffer.flush()
        with self.app.extensions["funnel"].sessions() as s:
            return [tuple(r) for r in s.execute(select(
                Visit.page, Visit.at, Visit.referrer_host, Visit.via, Visit.utm_source,
                Visit.utm_medium, Visit.utm_campaign).order_by(Visit.id))]


def _returning_cookie(watched: Watched) -> str:
    resp = watched.flask_only.get("/free-plan")
    return resp.headers["Set-Cookie"].split(";")[0]


def _compare(watched: Watched, monkeypatch, path: str, headers: dict[str, str]) -> None:
    watched.flask_only.get(path, headers=headers)  # renders it into the page cache
    _seeded(monkeypatch)
    expected = watched.flask_only.get(path, headers=headers)
    before = watched.flask_calls
    _seeded(monkeypatch)
    got = watched.served.get(path, headers=headers)
    monkeypatch.undo()
    assert watched.flask_calls == before, f"{path} {headers} was not answered by the fast layer"
    assert got.status == expected.status == "200 OK"
    assert got.get_data() == expected.get_data(), path
    assert sorted(got.headers.items()) == sorted(expected.headers.items()), path


def test_fast_answers_are_the_same_bytes_and_headers_as_flasks(app, db, monkeypatch):
    watched = Watched(app)
    cookie = _returning_cookie(watched)
    for path, headers in REQUESTS:
        if headers.get("Cookie") == "RETURNING":
            headers = {"Cookie": cookie}
        _compare(watched, monkeypatch, path, headers)
    # Each view counted once per answer, by Flask or by the layer, with the same row.
    rows = watched.visits()
    assert len(rows) == 1 + 3 * len(REQUESTS)
    for i in range(len(REQUESTS)):
        assert rows[2 + 3 * i] == rows[3 + 3 * i]


def test_production_headers_and_secure_cookie_too(app_config, db, monkeypatch, tmp_path):
    app = create_app({**app_config, "FUNNEL_ENV": "production", "SECRET_KEY": "k" * 48,
                      "FUNNEL_BASE_URL": "https://runstronger.example",
                      "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.unused",
                      "TRANSPORT": OutboxTransport(tmp_path / "outbox")})
    try:
        watched = Watched(app)
        for path in ("/?utm_source=a", "/free-plan"):
            _compare(watched, monkeypatch, path, {})
        resp = watched.served.get("/free-plan")
        assert "Secure" in resp.headers["Set-Cookie"]
        assert resp.headers["Strict-Transport-Security"]
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


def _form(page, **typed: str) -> dict[str, str]:
    """What a browser posts: the page's hidden fields and what the visitor typed."""
    html = page.get_data(as_text=True)
    hidden = dict(re.findall(r'<input id="\w+" name="(\w+)" type="hidden" value="([^"]*)"', html))
    assert "csrf_token" in hidden and "utm_source" in hidden
    return {**hidden, **typed}


def test_a_fast_landing_page_signs_up_with_its_source(app, db):
    watched = Watched(app)
    path = "/free-plan?via=article&ref=www.strava.com&utm_source=club&utm_campaign=spring"
    own = {"Referer": "http://localhost/?utm_source=club"}
    watched.flask_only.get(path, headers=own)  # the first visitor's page, rendered by Flask
    visitor = app.test_client()
    before = watched.flask_calls
    page = visitor.get(path, headers=own)
    assert watched.flask_calls == before
    assert "session=" in page.headers["Set-Cookie"] and page.headers["Vary"] == "Cookie"
    resp = visitor.post("/free-plan", data=_form(page, email="runner@example.com"))
    assert resp.status_code == 303
    take_in(app)
    db.rollback()
    sub = db.scalars(select(Subscriber).where(Subscriber.email == "runner@example.com")).one()
    assert (sub.referrer, sub.arrived_via, sub.utm_source, sub.utm_campaign) == (
        "www.strava.com", "article", "club", "spring")
    # Coming back: the same session, a fresh token that works, no new cookie.
    again = visitor.get(path, headers=own)
    assert watched.flask_calls == before + 1  # only the POST went to Flask
    assert "Set-Cookie" not in again.headers
    resp = visitor.post("/free-plan", data=_form(again, email="friend@example.com"))
    assert resp.status_code == 303
    # A forged page's token (signed with another key) is refused as before.
    resp = visitor.post("/free-plan", data={"email": "x@example.com", "csrf_token": "forged"})
    assert resp.status_code == 400


def test_what_the_layer_cannot_answer_exactly_goes_to_flask(app, db, logged_in):
    watched = Watched(app)
    watched.flask_only.get("/free-plan")
    watched.flask_only.get("/")
    calls = watched.flask_calls
    assert watched.served.head("/").status_code == 200
    assert watched.served.get("/free-plan/").status_code == 404
    assert watched.served.get("/?utm_source=not-yet-rendered").status_code == 200
    assert watched.flask_calls == calls + 3
    # The admin's session holds their login: Flask adds the CSRF value to it.
    calls = watched.flask_calls
    page = logged_in.get("/free-plan")
    assert watched.flask_calls == calls + 1 and page.status_code == 200


@pytest.mark.parametrize("setting", [{"DEBUG": True}, {"PAGE_CACHE_SIZE": 0}])
def test_no_cache_means_flask_renders_every_page(app_config, db, setting):
    app = create_app({**app_config, **setting})
    try:
        watched = Watched(app)
        for _ in range(3):
            assert watched.served.get("/free-plan").status_code == 200
            assert watched.served.get("/").status_code == 200
        assert watched.flask_calls == 6
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


def test_behind_a_proxy_the_forwarded_host_is_ours(app_config, db):
    app = create_app({**app_config, "TRUSTED_PROXIES": 1})
    try:
        watched = Watched(app)
        proxied = {"X-Forwarded-Host": "runstronger.example", "X-Forwarded-Proto": "https",
                   "Referer": "https://runstronger.example/?utm_source=x"}
        watched.served.get("/free-plan?via=article&ref=strava.com", headers=proxied)
        calls = watched.flask_calls
        watched.served.get("/free-plan?via=article&ref=strava.com", headers=proxied)
        assert watched.flask_calls == calls
        assert [r[2:4] for r in watched.visits()] == [("strava.com", "article")] * 2
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


@pytest.mark.browser
def test_in_a_browser_the_fast_landing_page_runs_its_script_and_signs_up(app, db, live_server,
                                                                         _browser):
    watched = Watched(app)
    watched.flask_only.get("/free-plan?utm_source=talk")
    calls = watched.flask_calls
    context = _browser.new_context()
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        page.goto(live_server + "/free-plan?utm_source=talk")
        assert "/free-plan" not in watched.flask_paths[calls:]  # the layer answered
        # The time-zone script carries this response's nonce, so it ran.
        assert page.input_value("#tz") != ""
        page.fill("#email", "browser@example.com")
        page.click("button[type=submit]")
        page.wait_for_url("**/check-your-inbox")
    finally:
        context.close()
    assert blocked == []
    take_in(app)
    db.rollback()
    sub = db.scalars(select(Subscriber).where(Subscriber.email == "browser@example.com")).one()
    assert sub.utm_source == "talk"
