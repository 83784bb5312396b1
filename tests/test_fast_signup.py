"""The sign-up POST answered before Flask (funnel/web/public/fastsignup.py) cannot be
told from Flask's: for any request hypothesis draws (the form's fields, good and
hostile; where it comes from; cookies, query strings, other bodies), the same
status, headers and bytes, the same intake row and the same counts against the
limits. Where it must hand a request to Flask after counting it (an attempt over
the limit, a write that fails), the answer is the plain path's and nothing is
counted twice. FAST_SIGNUP=0 sends every sign-up to Flask."""

from __future__ import annotations

import itertools
import random
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.test import Client

from funnel import create_app
from funnel.http import ratelimits
from funnel.models import SignupIntake
from funnel.subscribers import intake

COLUMNS = ("email", "first_name", "timezone", "at", "user_agent", "page", "referrer",
           "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "via")
SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
# A fresh client each time: its own counts against the limits.
_addresses = (f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in itertools.count(1))


class Watched:
    """The app with a count of the sign-ups that reached Flask."""

    def __init__(self, app) -> None:
        self.app = app
        self.layer = app.extensions["funnel_fastsignup"]
        self.flask_calls = 0
        inner = self.layer.wsgi_app

        def counting(environ, start_response):
            self.flask_calls += 1
            return inner(environ, start_response)

        self.layer.wsgi_app = counting
        self.flask_only = Client(counting, use_cookies=False)  # the layer skipped
        self.served = Client(app, use_cookies=False)  # through the layer, as gunicorn calls it
        self.last_ip = ""  # the address the last sign-up through the layer came from

    def rows(self, ip: str) -> list[tuple]:
        with self.app.extensions["funnel"].sessions() as s:
            return [tuple(r) for r in s.execute(
                select(*(getattr(SignupIntake, c) for c in COLUMNS))
                .where(SignupIntake.ip == ip).order_by(SignupIntake.id))]

    def counts(self, ip: str) -> tuple[int, int]:
        """(attempts, sign-ups) counted for ``ip``, in the first window of each limit."""
        limits = self.app.extensions[ratelimits.EXTENSION]
        key = ratelimits.client_key(ip)
        first = [ratelimits._windows(self.app.config[spec], limits.prefix, kind, key)[0][0]
                 for kind, spec in (("signup-attempt", "RATELIMIT_SIGNUP_ATTEMPTS"),
                                    ("signup", "RATELIMIT_SIGNUP"))]
        return limits.storage.get(first[0]), limits.storage.get(first[1])


def _post(client: Client, body: bytes | str, headers: dict[str, str], ip: str,
          content_type: str = "application/x-www-form-urlencoded", query: str = ""):
    return client.post("/free-plan" + query, data=body, headers=headers,
                       content_type=content_type, environ_base={"REMOTE_ADDR": ip})


def _warm(watched: Watched) -> None:
    """The first plain sign-up goes through Flask, and its answer is kept."""
    resp = _post(watched.served, "email=first%40example.com", SAME_SITE, next(_addresses))
    assert resp.status_code == 303


def _agree(watched: Watched, body, headers, content_type="application/x-www-form-urlencoded",
           query="") -> bool:
    """Send the same sign-up through the layer and through Flask alone, each from its
    own new client address; True when the layer answered it itself."""
    fast_ip, plain_ip = next(_addresses), next(_addresses)
    watched.last_ip = fast_ip
    random.seed(11)  # the request id: Flask's hook and the layer draw the same one
    before = watched.flask_calls
    fast = _post(watched.served, body, headers, fast_ip, content_type, query)
    answered_here = watched.flask_calls == before
    random.seed(11)
    plain = _post(watched.flask_only, body, headers, plain_ip, content_type, query)
    assert fast.status == plain.status
    assert fast.get_data() == plain.get_data()
    assert sorted(fast.headers.items()) == sorted(plain.headers.items())
    assert watched.rows(fast_ip) == watched.rows(plain_ip)
    assert watched.counts(fast_ip) == watched.counts(plain_ip)
    return answered_here


def test_a_plain_sign_up_is_answered_before_flask_and_stored_the_same(app, db):
    watched = Watched(app)
    _warm(watched)
    body = urlencode({"email": "Runner@Example.com", "first_name": "Sam", "tz": "Europe/Paris",
                      "via": "article", "referrer": "www.strava.com", "utm_source": "club",
                      "utm_medium": "", "website": ""})
    assert _agree(watched, body, {**SAME_SITE, "User-Agent": "Phone/1.0"})
    assert _agree(watched, body, {})  # neither header: not a browser
    assert _agree(watched, body, {"Sec-Fetch-Site": "none"})
    [row] = watched.rows(watched.last_ip)
    assert row[:3] == ("runner@example.com", "Sam", "Europe/Paris")
    assert row[5:9] == ("http://localhost/free-plan", "www.strava.com", "club", None)
    assert watched.layer.answered == 3


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=90)
_VALUE = st.one_of(_TEXT, st.sampled_from(
    ["", " ", "a@b.co", "Runner@Example.COM", "x" * 250 + "@example.com", "r\x00@example.com",
     "not an address", "Europe/London", "Mars/Base", "article", "direct", "Ann\u202e", "  Sam "]))
_FIELDS = st.lists(st.tuples(
    st.sampled_from(["email", "first_name", "website", "tz", "referrer", "via", "utm_source",
                     "utm_medium", "utm_campaign", "utm_term", "utm_content", "other"]),
    _VALUE), max_size=4)
_MAYBE = st.sampled_from  # None (the header left out) drawn as often as each value


@st.composite
def _headers(draw) -> dict[str, str]:
    headers = {
        "Sec-Fetch-Site": draw(_MAYBE([None, None, "same-origin", "none", "same-site",
                                       "cross-site"])),
        "Origin": draw(_MAYBE([None, None, None, "http://localhost", "https://evil.example",
                               "null", "http://localhost:5000"])),
        "Cookie": draw(_MAYBE([None, None, None, None, "_ga=1", "session=abc.def.ghi"])),
        "User-Agent": draw(_MAYBE([None, "Phone/1.0", "x" * 600, ""])),
        "X-Request-ID": draw(_MAYBE([None, None, "req-from-nginx-1234", "bad id"])),
    }
    return {k: v for k, v in headers.items() if v is not None}


_EMAIL = st.one_of(st.sampled_from(["a@b.co", "Runner@Example.COM", "jo.bloggs+news@mail.example"]),
                   _VALUE)


def _watched(app) -> Watched:
    watched = getattr(app, "_watched_signup", None)
    if watched is None:
        watched = app._watched_signup = Watched(app)
        _warm(watched)
    return watched


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(email=_EMAIL, fields=_FIELDS,
       headers=st.sampled_from([{}, SAME_SITE, {"Sec-Fetch-Site": "none"}]))
@example(email="a@b.co", fields=[("website", "http://spam.example")], headers={})
@example(email="a@b.co", fields=[("utm_source", "x\x00y")], headers={})
@example(email="a@b.co", fields=[("first_name", "Sam\x00")], headers={})
@example(email="a@b.co", fields=[("tz", "Mars/Base"), ("email", "second@b.co")], headers={})
def test_hypothesis_any_form_gets_the_same_answer(app, db, email, fields, headers):
    """What the visitor types and the page's hidden fields carry, from the site itself."""
    _agree(_watched(app), urlencode([("email", email), *fields]), headers)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(headers=_headers(), extra=st.sampled_from([[], [("first_name", "Sam")], [("via", "article")]]),
       encoding=st.sampled_from(["form"] * 4 + ["latin-1", "json", "multipart", "charset"]),
       query=st.sampled_from([""] * 4 + ["?utm_source=x", "?"]))
@example(headers={"Sec-Fetch-Site": "same-site"}, extra=[], encoding="form", query="")
@example(headers={"Origin": "https://evil.example"}, extra=[], encoding="form", query="")
@example(headers={"Cookie": "_ga=1"}, extra=[], encoding="form", query="")
def test_hypothesis_any_request_gets_the_same_answer(app, db, headers, extra, encoding, query):
    """Where a good sign-up comes from and how it is sent."""
    fields = [("email", "a@b.co"), *extra]
    content_type = "application/x-www-form-urlencoded"
    body: bytes | str = urlencode(fields)
    if encoding == "latin-1":
        body = body.encode() + b"&x=%FF\xff"
    elif encoding == "json":
        content_type, body = "application/json", '{"email": "a@b.co"}'
    elif encoding == "multipart":
        content_type = "multipart/form-data; boundary=b"
        body = "".join(f'--b\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                       for k, v in fields) + "--b--\r\n"
    elif encoding == "charset":
        content_type += "; charset=utf-8"
    _agree(_watched(app), body, headers, content_type, query)


def test_every_sign_up_the_layer_may_answer_it_answers(app, db):
    """Not only the same answers: the plain sign-ups hypothesis draws do not all slip
    through to Flask, or the property above would prove nothing about the layer."""
    watched = Watched(app)
    _warm(watched)
    answered = [_agree(watched, urlencode({"email": f"r{i}@example.com", "first_name": name}),
                       SAME_SITE) for i, name in enumerate(["", "Sam", "Zoë", "Jean-Luc"])]
    assert answered == [True] * 4


def test_an_attempt_over_the_limit_is_the_plain_429_and_counted_once(app_config, db):
    app = create_app({**app_config, "RATELIMIT_SIGNUP_ATTEMPTS": "3 per minute"})
    try:
        watched = Watched(app)
        _warm(watched)
        ip = "198.51.100.9"
        statuses = [_post(watched.served, f"email=r{i}%40example.com&first_name=Sam", SAME_SITE,
                          ip).status_code for i in range(5)]
        assert statuses == [303, 303, 303, 429, 429]
        assert watched.counts(ip) == (5, 3)
        assert len(watched.rows(ip)) == 3
        page = _post(watched.served, "email=late%40example.com&first_name=Sam", SAME_SITE, ip)
        html = page.get_data(as_text=True)
        assert page.status_code == 429 and "Slow down" in html
        assert 'value="late@example.com"' in html and 'value="Sam"' in html  # nothing lost
        assert watched.counts(ip) == (6, 3)
    finally:
        app.extensions["funnel"].engine.dispose()


def test_a_write_that_fails_is_the_plain_503_and_counted_once(app, db, monkeypatch):
    watched = Watched(app)
    _warm(watched)

    def away(engine, row):
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake, "record_intake", away)
    random.seed(5)  # the request id on the error page
    resp = _post(watched.served, "email=r%40example.com", SAME_SITE, "198.51.100.10")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "30"
    assert "reach our records" in resp.get_data(as_text=True)
    random.seed(5)
    plain = _post(watched.flask_only, "email=r%40example.com", SAME_SITE, "198.51.100.11")
    assert plain.status_code == 503 and plain.get_data() == resp.get_data()
    # The attempt counted once, the sign-up not at all: nothing was stored.
    assert watched.counts("198.51.100.10") == watched.counts("198.51.100.11") == (1, 0)
    assert watched.rows("198.51.100.10") == []


@pytest.mark.parametrize("setting", [{"FAST_SIGNUP": False}, {"DEBUG": True},
                                     {"TRUSTED_HOSTS": ["localhost"]}])
def test_with_the_layer_off_flask_answers_every_sign_up(app_config, db, setting):
    app = create_app({**app_config, **setting})
    try:
        watched = Watched(app)
        for i in range(3):
            assert _post(watched.served, f"email=r{i}%40example.com", SAME_SITE,
                         "198.51.100.12").status_code == 303
        assert watched.flask_calls == 3 and watched.layer.answered == 0
        assert len(watched.rows("198.51.100.12")) == 3
    finally:
        app.extensions["funnel"].engine.dispose()


def test_the_layer_uses_no_private_api_of_flask_werkzeug_or_wtforms():
    import re
    from pathlib import Path

    import funnel.web.form_check as check
    import funnel.web.public.fastsignup as layer

    for module in (layer, check):
        source = Path(module.__file__).read_text()
        imports = re.findall(r"^(?:from|import) (\S+)(?: import (.+))?", source, re.M)
        assert all(not part.startswith("_") for name, names in imports if name != "__future__"
                   for part in [*name.split("."), *re.split(r",\s*", names or "x")])
        assert not re.search(r"\b(?:flask|werkzeug|wtforms)\.\S*\._", source)
