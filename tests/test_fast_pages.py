"""The article and the landing page are replayed without Flask's request handling
(funnel/web/public/fastpages.py), and a visitor cannot tell: the same bytes, the same
headers, a sign-up form that works, the visit counted with the same source.
Hypothesis draws the requests; the plain path is the same app with the layer
skipped."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
]


@pytest.fixture
def app_config(app_config):
    return {**app_config, "VISIT_FLUSH_SECONDS": 3600}


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


def _compare(watched: Watched, path: str, headers: dict[str, str]) -> None:
    watched.served.get(path, headers=headers)  # Flask answers; the layer keeps it
    random.seed(7)  # the request id Flask's hook makes, and the layer's
    expected = watched.flask_only.get(path, headers=headers)
    before = watched.flask_calls
    random.seed(7)
    got = watched.served.get(path, headers=headers)
    assert watched.flask_calls == before, f"{path} {headers} was not answered by the fast layer"
    assert got.status == expected.status == "200 OK"
    assert got.get_data() == expected.get_data(), path
    assert sorted(got.headers.items()) == sorted(expected.headers.items()), path
    assert "Set-Cookie" not in got.headers and "Vary" not in got.headers


def test_fast_answers_are_the_same_bytes_and_headers_as_flasks(app, db):
    watched = Watched(app)
    for path, headers in REQUESTS:
        _compare(watched, path, headers)
    # Each view counted once per answer, by Flask or by the layer, with the same row.
    rows = watched.visits()
    assert len(rows) == 3 * len(REQUESTS)
    for i in range(len(REQUESTS)):
        assert rows[3 * i + 1][:1] + rows[3 * i + 1][2:] == rows[3 * i + 2][:1] + rows[3 * i + 2][2:]


# What a visitor can vary: the query (UTM values, via, ref, anything else, in any
# encoding) and the headers the pages read (Referer) or must ignore (cookies, ids).
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120)
_QUERY = st.lists(st.tuples(
    st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                     "via", "ref", "fbclid", "q"]),
    st.one_of(_TEXT, st.sampled_from(["article", "direct", "", "%FF", "//evil.example"]))),
    max_size=5)
_HEADERS = st.fixed_dictionaries({}, optional={
    "Referer": st.sampled_from(["https://www.strava.com/x?y=1", "http://localhost/?utm_source=a",
                                "not a url", "http://[::1", "https://localhost:5000/"]),
    "Cookie": st.sampled_from(["session=abc.def.ghi", "_ga=1", "session="]),
    "X-Request-ID": st.sampled_from(["req-from-nginx-1234", "bad id with spaces"]),
    "Accept-Language": st.sampled_from(["fr", "de-DE,de;q=0.9"]),
})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(page=st.sampled_from(["/", "/free-plan"]), query=_QUERY, headers=_HEADERS)
def test_hypothesis_the_fast_path_and_the_plain_path_agree(app, db, page, query, headers):
    from urllib.parse import urlencode

    watched = getattr(app, "_watched", None) or Watched(app)
    app._watched = watched  # one per app: the layer's hook is wrapped once
    path = page + ("?" + urlencode(query) if query else "")
    watched.served.get(path, headers=headers)
    random.seed(3)
    plain = watched.flask_only.get(path, headers=headers)
    random.seed(3)
    before = watched.flask_calls
    fast = watched.served.get(path, headers=headers)
    assert watched.flask_calls == before  # the layer answered
    assert fast.status == plain.status == "200 OK"
    assert fast.get_data() == plain.get_data()
    assert sorted(fast.headers.items()) == sorted(plain.headers.items())


def test_production_headers_too(app_config, db, tmp_path):
    app = create_app({**app_config, "FUNNEL_ENV": "production", "SECRET_KEY": "k" * 48,
                      "FUNNEL_BASE_URL": "https://runstronger.example",
                      "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.unused",
                      "TRANSPORT": OutboxTransport(tmp_path / "outbox")})
    try:
        watched = Watched(app)
        for path in ("/?utm_source=a", "/free-plan"):
            _compare(watched, path, {})
        resp = watched.served.get("/free-plan")
        assert resp.headers["Strict-Transport-Security"]
        assert "Set-Cookie" not in resp.headers
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


def _form(page, **typed: str) -> dict[str, str]:
    """What a browser posts: the page's hidden fields and what the visitor typed."""
    html = page.get_data(as_text=True)
    hidden = dict(re.findall(r'<input id="\w+" name="(\w+)" type="hidden" value="([^"]*)"', html))
    assert "csrf_token" not in hidden and "utm_source" in hidden
    return {**hidden, **typed}


def test_a_fast_landing_page_signs_up_with_its_source(app, db):
    watched = Watched(app)
    path = "/free-plan?via=article&ref=www.strava.com&utm_source=club&utm_campaign=spring"
    own = {"Referer": "http://localhost/?utm_source=club"}
    watched.served.get(path, headers=own)  # the first visitor's page, answered by Flask
    visitor = app.test_client()
    before = watched.flask_calls
    page = visitor.get(path, headers=own)
    assert watched.flask_calls == before
    assert "Set-Cookie" not in page.headers  # nothing of this visitor's in it
    resp = visitor.post("/free-plan", data=_form(page, email="runner@example.com"),
                        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert resp.status_code == 303
    take_in(app)
    db.rollback()
    sub = db.scalars(select(Subscriber).where(Subscriber.email == "runner@example.com")).one()
    assert (sub.referrer, sub.arrived_via, sub.utm_source, sub.utm_campaign) == (
        "www.strava.com", "article", "club", "spring")


def test_what_the_layer_cannot_answer_exactly_goes_to_flask(app, db):
    watched = Watched(app)
    watched.served.get("/free-plan")
    watched.served.get("/")
    calls = watched.flask_calls
    assert watched.served.head("/").status_code == 200
    assert watched.served.get("/free-plan/").status_code == 404
    assert watched.served.get("/?utm_source=not-yet-rendered").status_code == 200
    assert watched.flask_calls == calls + 3


@pytest.mark.parametrize("setting", [{"DEBUG": True}, {"PAGE_CACHE_SIZE": 0},
                                     {"FAST_PAGES": False}])
def test_with_the_layer_off_flask_answers_every_page(app_config, db, setting):
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


def test_the_layer_uses_no_private_api_of_flask_flask_wtf_or_itsdangerous():
    from pathlib import Path

    import funnel.web.public.fastpages as layer

    source = Path(layer.__file__).read_text()
    assert "itsdangerous" not in source and "flask_wtf" not in source
    imports = re.findall(r"^(?:from|import) (\S+)", source, re.M)
    assert all(not name.split(".")[-1].startswith("_") for name in imports if name != "__future__")
    assert not re.search(r"\b(?:flask|werkzeug)\.\S*\._", source)


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
    import urllib.request

    watched = Watched(app)
    # The first visitor of this host and query: Flask answers, the layer keeps it.
    urllib.request.urlopen(live_server + "/free-plan?utm_source=talk", timeout=10).read()
    calls = watched.flask_calls
    context = _browser.new_context()
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)
    try:
        page.goto(live_server + "/free-plan?utm_source=talk")
        assert "/free-plan" not in watched.flask_paths[calls:]  # the layer answered
        # The time-zone script is allowed by its hash in the CSP, so it ran.
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
