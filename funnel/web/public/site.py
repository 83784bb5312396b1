"""The public site: the article, the landing page and the sign-up."""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf

from funnel import runtime
from funnel.core.inputs import FunnelError
from funnel.http import ratelimits
from funnel.subscribers import actions as subscribers
from funnel.web.forms import SignupForm
from funnel.web.headers import csp_nonce
from funnel.web.public.visits import VisitBuffer

bp = Blueprint("site", __name__)

UTM_KEYS = ("source", "medium", "campaign", "term", "content")
UTM_ARGS = tuple(f"utm_{k}" for k in UTM_KEYS)

@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database: once per process


def valid_zone(name: str | None) -> str:
    return name if name in _zones() else runtime.rt().settings.default_timezone


def source_host() -> str | None:
    """The site that sent the visitor: the Referer's host, or, when they came
    through our own article, the host the article passed along as ``ref``.
    Only the host is kept: a full referring URL can carry personal data."""
    return referring_host(request.environ.get("HTTP_REFERER"), lambda: request.host, request.args)


def referring_host(referer: str | None, own_host: Callable[[], str],
                   args: Mapping[str, str]) -> str | None:
    """``source_host`` from its parts (funnel.web.public.fastpages answers without a request)."""
    host = urlsplit(referer).hostname if referer else None  # most views have none: no parsing
    if host and host == own_host().split(":")[0]:
        host = args.get("ref") or None  # moving around our own site is not a source
    return host[:255] if host else None


def init_app(app: Flask) -> None:
    app.extensions["funnel_visits"] = VisitBuffer(
        app.extensions["funnel"].sessions, float(app.config["VISIT_FLUSH_SECONDS"]))
    app.extensions["funnel_pages"] = PageCache(int(app.config["PAGE_CACHE_SIZE"]))

    @app.before_request
    def _flush_visits_for_the_dashboard() -> None:
        # The marketer sees this process's buffered views at once. An app-level
        # hook runs before the admin login check opens the request's session,
        # which on SQLite holds the write lock the flush needs.
        if request.blueprint == "admin":
            visits().flush()


def visits() -> VisitBuffer:
    return current_app.extensions["funnel_visits"]


def arrived_via(args: Mapping[str, str] | None = None) -> str:
    """"article" when the visitor followed the article's link to the landing page."""
    return "article" if (request.args if args is None else args).get("via") == "article" else "direct"


def count_visit(page: str, host: str | None, via: str | None = None) -> None:
    """Count a page view with no personal data: the referring site and UTM only.
    Buffered: written with others a few seconds later (see funnel/web/visits.py)."""
    visits().add(visit_row(page, runtime.now(), host, via, request.args))


def visit_row(page: str, at: datetime, host: str | None, via: str | None,
              args: Mapping[str, str]) -> dict[str, Any]:
    return {
        "page": page, "at": at, "referrer_host": host, "via": via,
        "utm_source": args.get("utm_source", "")[:100] or None,
        "utm_medium": args.get("utm_medium", "")[:100] or None,
        "utm_campaign": args.get("utm_campaign", "")[:100] or None,
    }


class PageCache:
    """Rendered pages by what they depend on (page, source host, UTM values).
    Templates only change with a deploy, which restarts the processes; the size
    bound keeps made-up query strings from growing it without limit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pages: OrderedDict[tuple, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()  # the development server is threaded

    def get(self, key: tuple, render: Callable[[], tuple[str, ...]]) -> tuple[str, ...]:
        if self.size <= 0 or current_app.debug:
            return render()
        with self._lock:
            parts = self._pages.get(key)
            if parts is not None:
                self._pages.move_to_end(key)
                return parts
        parts = render()
        with self._lock:
            self._pages[key] = parts
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
        return parts

    def peek(self, key: tuple) -> tuple[str, ...] | None:
        """The page if it is kept, without rendering it (no app context needed)."""
        with self._lock:
            return self._pages.get(key)


def pages() -> PageCache:
    return current_app.extensions["funnel_pages"]


def article_carry(args: Mapping[str, str], host: str | None) -> dict[str, str]:
    """What the article's link to the landing page passes along: UTM, via and ``ref``."""
    carry = {key: value[:100] for key in UTM_ARGS if (value := args.get(key))}
    carry["via"] = "article"
    if host:
        carry["ref"] = host  # so a sign-up is credited to where the reader came from
    return carry


def article_key(carry: dict[str, str]) -> tuple:
    return ("article", tuple(carry.items()))


def landing_key(args: Mapping[str, str], host: str, via: str) -> tuple:
    return ("landing", host, via, tuple(args.get(f"utm_{k}", "")[:100] for k in UTM_KEYS))


def cut(html: str, values: dict[str, str]) -> tuple[str, ...]:
    """``html`` cut around each of ``values``: text, name, text, name, ..., text."""
    names = {v: k for k, v in values.items()}
    pieces = re.split("(" + "|".join(map(re.escape, names)) + ")", html)
    return tuple(names[p] if i % 2 else p for i, p in enumerate(pieces))


def fill(pieces: tuple[str, ...], values: dict[str, str]) -> str:
    """What ``cut`` took apart, with this response's ``values`` put in."""
    return "".join(values[p] if i % 2 else p for i, p in enumerate(pieces))


@bp.get("/")
def article():
    host = source_host()
    count_visit("article", host)
    carry = article_carry(request.args, host)

    def render() -> tuple[str, ...]:
        html = render_template("article.html", plan_url=url_for("site.landing", **carry))
        # Should the article ever get an inline script, its nonce must be this
        # response's, not the first reader's: cut around it as the landing page does.
        return cut(html, {"nonce": g.csp_nonce}) if "csp_nonce" in g else (html,)

    pieces = pages().get(article_key(carry), render)
    return pieces[0] if len(pieces) == 1 else fill(pieces, {"nonce": csp_nonce()})


@bp.get("/free-plan")
def landing():
    host = source_host() or ""
    via = arrived_via()
    count_visit("landing", host or None, via)
    key = landing_key(request.args, host, via)
    utm = key[3]

    def render() -> tuple[str, ...]:
        form = SignupForm(formdata=None)
        form.referrer.data = host
        form.via.data = via
        for k, v in zip(UTM_KEYS, utm, strict=True):
            getattr(form, f"utm_{k}").data = v
        html = render_template("landing.html", form=form, consent_text=subscribers.CONSENT_TEXT)
        # The page is the same for everyone but for the form's token and the
        # script's nonce: keep the text around them and fill in each response's own.
        pieces = cut(html, {"token": generate_csrf(), "nonce": csp_nonce()})
        if pieces[1::2].count("token") != 1:
            raise RuntimeError("the landing page must show its CSRF token exactly once")
        return pieces

    pieces = pages().get(key, render)
    return fill(pieces, {"token": generate_csrf(), "nonce": csp_nonce()})


SLOW_DOWN = ("Slow down a little: there have been a lot of sign-ups from your connection "
             "just now. Please wait a minute and send the form again; what you typed is "
             "still here.")


def _again(checked: SignupForm, status: int, **extra):
    """The page again with what was typed and why: a runner at a busy talk loses nothing.
    Its form carries a CSRF token for the next try, which the checked one left out."""
    form = SignupForm()
    for name, field in checked._fields.items():
        form[name].errors = field.errors
    return render_template("landing.html", form=form, consent_text=subscribers.CONSENT_TEXT,
                           **extra), status


def _limited(form: SignupForm):
    return _again(form, 429, limited=SLOW_DOWN)


@bp.post("/free-plan")
def signup():
    # When CSRFProtect has checked the token (every POST, unless configured
    # otherwise), the form needs no CSRF field: making the next token (an HMAC and
    # a JSON dump) is only needed if the page is shown again.
    form = SignupForm(meta={"csrf": False}) if g.get("csrf_valid") else SignupForm()
    if not ratelimits.hit("signup-attempt", "RATELIMIT_SIGNUP_ATTEMPTS"):
        return _limited(form)
    if not form.validate():
        if "csrf_token" in form.errors:
            from funnel.web.errors import render_error

            return render_error(400, "This form has expired. Please reload the page and try again.")
        return _again(form, 422)
    if form.website.data:
        # A bot filled the honeypot: answer like a success, store nothing.
        return redirect(url_for("site.check_inbox"), code=303)
    # Only sign-ups that pass validation count: a typo costs nothing.
    if not ratelimits.within("signup", "RATELIMIT_SIGNUP"):
        return _limited(form)
    meta = subscribers.SignupMeta(
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
        page=request.url,
        referrer=form.referrer.data,
        utm={k: getattr(form, f"utm_{k}").data or "" for k in UTM_KEYS},
        via=form.via.data,
    )
    try:
        row = subscribers.intake_row(
            email=form.email.data, first_name=form.first_name.data,
            timezone=valid_zone(form.tz.data), meta=meta, now=runtime.now(),
        )
    except FunnelError as exc:
        getattr(form, exc.field).errors = [str(exc)]
        return _again(form, 422)
    # One INSERT, committed before the answer; whether the address is known, and
    # what to mail it, the worker decides (subscribers.take_intake).
    subscribers.record_intake(runtime.rt().intake(), row)
    ratelimits.hit("signup", "RATELIMIT_SIGNUP")
    runtime.rt().wake.set()  # the worker takes it in; the embedded one at once
    return redirect(url_for("site.check_inbox"), code=303)


@bp.get("/check-your-inbox")
def check_inbox():
    return render_template("check_inbox.html")
