"""The landing page's sign-up POST answered before Flask's request handling.

A sign-up's own work is a few checks and one INSERT; Flask's request context,
its hooks, the form parser and WTForms cost several times that, and with the
INSERT waiting for its commit, the CPU of the request is what bounds sign-ups
(docs/million.md, Sign-ups). This WSGI layer sits around the Flask app (inside
ProxyFix, beside ``fastpages``) and answers a ``POST /free-plan`` itself when it
is the plain case, doing what ``signup.signup`` does, in its order:

- before anything is counted or written, every check the view makes: the body
  is a small ``application/x-www-form-urlencoded`` form read as Werkzeug reads
  it, with no NUL anywhere (``nul_guard``); the post comes from this site or from
  no browser at all (``crossorigin``: ``Sec-Fetch-Site`` same-origin or none, or
  neither it nor ``Origin``); the form passes (``form_check``, the form's own
  validators); the honeypot is empty; the address, name and time zone make an
  intake row; the client is within ``RATELIMIT_SIGNUP``; the intake is not full.
  Any of these failing, and anything it does not know (a query string, a cookie,
  another content type, a large or chunked body), hands the request to Flask
  untouched but for the body, given back as the same bytes;
- then, as the view: counts the attempt, writes the row (``intake.record_intake``,
  the group commit included), counts the sign-up and wakes the worker, and sends
  the answer Flask gave to the same sign-up before (its 303 and headers, with a
  fresh request id, as ``fastpages.Kept``): the first sign-up for each scheme,
  host and path prefix goes through Flask and its answer is kept, if it is a
  303 that sets no cookie and does not vary on one.

Once it has counted the attempt it never gives the request to Flask to do
again: an attempt over the limit, or a write that raised, goes to Flask with a
``signup.FastDone`` saying so, and the view answers as it would have (the 429
page with what was typed; the same exception raised, so the 503 page for a
database that is away). ``FAST_SIGNUP=0`` turns it off, as do the settings that
turn ``fastpages`` off for another host (``TRUSTED_HOSTS``, ``SERVER_NAME``, host
matching) and debug mode. ``tests/test_fast_signup.py`` compares its answers,
stored rows and counts with Flask's, with hypothesis drawing the requests.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.datastructures import ImmutableMultiDict

from funnel.core.inputs import FunnelError
from funnel.http import ratelimits
from funnel.operations.logs import request_id
from funnel.subscribers import actions as subscribers
from funnel.subscribers import intake
from funnel.web.public import signup, site
from funnel.web.public.fastpages import Kept, StartResponse, WSGIApp, answer_of, shared_by_all

PATH = "/free-plan"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 8 * 1024  # a sign-up is a few hundred bytes; a larger body goes to Flask
KEPT_MAX = 64  # answers kept: one per scheme, host and path prefix


class FastSignup:
    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app  # everything not answered here
        self._kept: OrderedDict[tuple, tuple[str, Kept]] = OrderedDict()
        self._lock = threading.Lock()
        self._on: bool | None = None
        self.answered = 0  # sign-ups answered here (tests, the bench)

    def _setup(self) -> bool:
        """Read the settings once, at the first sign-up (the config is final by then)."""
        config = self.app.config
        self.runtime = self.app.extensions["funnel"]
        self.limits = self.app.extensions[ratelimits.EXTENSION]
        self.cap = site.intake_cap(self.app)
        self.check = signup.signup_check(self.app)
        return self.check is not None and not config.get("TRUSTED_HOSTS") \
            and not config.get("SERVER_NAME") and not self.app.url_map.host_matching

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        if self._on is None:
            self._on = self._setup()
        size = self._size(environ) if self._on and not self.app.debug else None
        if size is None:
            return self.wsgi_app(environ, start_response)
        body = environ["wsgi.input"].read(size)
        environ["wsgi.input"] = io.BytesIO(body)  # Flask reads the same bytes if it answers
        try:
            plan = self._plan(environ, body) if len(body) == size else None
        except Exception:  # noqa: BLE001  (nothing is counted yet: Flask says what is wrong)
            plan = None
        if plan is None:
            return self.wsgi_app(environ, start_response)
        origin, client, row = plan
        kept = self._kept.get(origin)
        if kept is None:
            return self._keep(origin, environ, start_response)
        config = self.app.config
        if not self.limits.hit("signup-attempt", config["RATELIMIT_SIGNUP_ATTEMPTS"], client):
            environ[signup.FAST_DONE] = signup.FastDone(attempt_ok=False)
            return self.wsgi_app(environ, start_response)
        try:
            intake.record_intake(self.runtime.intake(), row)
        except Exception as exc:  # noqa: BLE001  (answered by the view, as if it had raised there)
            environ[signup.FAST_DONE] = signup.FastDone(attempt_ok=True, error=exc)
            return self.wsgi_app(environ, start_response)
        self.limits.hit("signup", config["RATELIMIT_SIGNUP"], client)
        self.runtime.wake.set()  # the worker takes it in; the embedded one at once
        self.answered += 1
        status, answer = kept
        start_response(status, answer.headers(request_id(environ)))
        return [answer.body]

    def _size(self, environ: dict[str, Any]) -> int | None:
        """The body's length when the request is one this layer may read, else None."""
        length = environ.get("CONTENT_LENGTH") or ""
        if environ.get("CONTENT_TYPE") != FORM or not length.isdigit() \
                or environ.get("HTTP_TRANSFER_ENCODING") is not None \
                or environ.get("QUERY_STRING") or environ.get("HTTP_COOKIE") is not None \
                or not str(environ.get("SCRIPT_NAME", "")).isascii():
            return None
        size = int(length)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if not 0 < size <= MAX_BODY or (limit is not None and size > limit):
            return None
        site_header = environ.get("HTTP_SEC_FETCH_SITE")
        # crossorigin.refused is False for these; any other case is Flask's to judge.
        if site_header is not None:
            return size if site_header in ("same-origin", "none") else None
        return size if environ.get("HTTP_ORIGIN") is None else None

    def _plan(self, environ: dict[str, Any], body: bytes) -> tuple[tuple, str, dict] | None:
        """(the answer's key, the client, the intake row) when the view would store
        this sign-up and answer 303; None for anything else."""
        # As Werkzeug's form parser reads a urlencoded body.
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        if any("\x00" in name or "\x00" in value for name, value in pairs):
            return None  # nul_guard's 400
        assert self.check is not None
        data = self.check.check(ImmutableMultiDict(pairs))
        if data is None or data["website"]:
            return None
        client = ratelimits.client_key(environ.get("REMOTE_ADDR"))
        if not self.limits.test("signup", self.app.config["RATELIMIT_SIGNUP"], client):
            return None
        origin = site.page_origin(environ)
        scheme, host, script_name = origin
        meta = subscribers.SignupMeta(
            ip=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
            page=signup.page_url(scheme, host, script_name.rstrip("/"), PATH, b""),
            referrer=data["referrer"],
            utm={k: data[f"utm_{k}"] or "" for k in site.UTM_KEYS},
            via=data["via"],
        )
        try:
            row = intake.intake_row(
                email=data["email"] or "", first_name=data["first_name"],
                timezone=site.valid_zone(data["tz"], self.runtime.settings.default_timezone),
                meta=meta, now=self.runtime.clock())
        except FunnelError:
            return None
        engine = self.runtime.intake()
        if self.cap.limit > 0 and self.cap.waiting(engine) >= self.cap.limit:
            return None  # the view says so (and logs it)
        return origin, client, row

    def _keep(self, origin: tuple, environ: dict[str, Any],
              start_response: StartResponse) -> Iterable[bytes]:
        """Flask does this sign-up; its 303 is kept as the answer to the next ones."""
        status, headers, body = answer_of(self.wsgi_app, environ, start_response)
        if status.startswith("303 ") and shared_by_all(headers):
            with self._lock:
                self._kept[origin] = (status, Kept(list(headers), body))
                while len(self._kept) > KEPT_MAX:
                    self._kept.popitem(last=False)
        return [body]


def init_app(app: Flask) -> None:
    """Wraps the app's WSGI callable; call before ProxyFix (``headers.init_app``)."""
    layer = FastSignup(app, app.wsgi_app)
    app.extensions["funnel_fastsignup"] = layer
    app.wsgi_app = layer  # type: ignore[method-assign]
