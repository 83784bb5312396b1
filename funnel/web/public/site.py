"""The public site: the article, the landing page and the sign-up."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
    url_for,
)
from werkzeug.wsgi import get_host

from funnel import runtime
from funnel.core.inputs import time_zones
from funnel.subscribers import actions as subscribers
from funnel.subscribers.intake_limits import IntakeCap
from funnel.web.forms import SignupForm
from funnel.web.headers import hashed_policy
from funnel.web.public.visits import VisitBuffer

bp = Blueprint("site", __name__)

UTM_KEYS = ("source", "medium", "campaign", "term", "content")
UTM_ARGS = tuple(f"utm_{k}" for k in UTM_KEYS)

@functools.cache
def _zones() -> frozenset[str]:
    # The zones the worker's own check accepts (funnel.intake_check), so a zone the
    # form lets through is never refused later.
    return frozenset(time_zones())


def valid_zone(name: str | None, default: str | None = None) -> str:
    """``name`` when a sign-up may use it, else ``default`` (the app's DEFAULT_TIMEZONE)."""
    if name in _zones():
        return name
    return default if default is not None else runtime.rt().settings.default_timezone


def source_host() -> str | None:
    """The site that sent the visitor: the Referer's host, or, when they came
    through our own article, the host the article passed along as ``ref``.
    Only the host is kept: a full referring URL can carry personal data."""
    return referring_host(request.environ.get("HTTP_REFERER"), lambda: request.host, request.args)


def referring_host(referer: str | None, own_host: Callable[[], str],
                   args: Mapping[str, str]) -> str | None:
    """``source_host`` from its parts (funnel.web.public.fastpages answers without a request)."""
    try:
        host = urlsplit(referer).hostname if referer else None  # most views have none: no parsing
    except ValueError:
        host = None  # "http://[::1": no host anyone could be credited with
    if host and host == own_host().split(":")[0]:
        host = args.get("ref") or None  # moving around our own site is not a source
    return host[:255] if host else None


def init_app(app: Flask) -> None:
    app.extensions["funnel_visits"] = VisitBuffer(
        app.extensions["funnel"].sessions, float(app.config["VISIT_FLUSH_SECONDS"]))
    app.extensions["funnel_pages"] = PageCache(int(app.config["PAGE_CACHE_SIZE"]))
    app.extensions["funnel_intake_cap"] = IntakeCap(int(app.config["SIGNUP_INTAKE_MAX"]))

    @app.before_request
    def _flush_visits_for_the_dashboard() -> None:
        # The marketer sees this process's buffered views at once. An app-level
        # hook runs before the admin login check opens the request's session,
        # which on SQLite holds the write lock the flush needs.
        if request.blueprint == "admin":
            visits().flush()


def intake_cap(app: Flask | None = None) -> IntakeCap:
    return (app or current_app).extensions["funnel_intake_cap"]


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
        "utm_source": _utm(args, "utm_source"),
        "utm_medium": _utm(args, "utm_medium"),
        "utm_campaign": _utm(args, "utm_campaign"),
    }


def _utm(args: Mapping[str, str], name: str) -> str | None:
    # A value with a NUL byte is not counted: PostgreSQL would refuse the whole
    # buffered batch of visits (the fast page layer never reaches the NUL guard).
    value = args.get(name, "")[:100]
    return value if value and "\x00" not in value else None


class PageCache:
    """Rendered pages, each with its Content-Security-Policy, by everything they
    depend on: the page, the scheme, host and path prefix the links are made
    for, and the query's values (``page_key``). A page holds nothing of the
    visitor's, so one visitor's copy is every later visitor's. Templates only
    change with a deploy, which restarts the processes; the size bound keeps
    made-up query strings from growing it without limit."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pages: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()  # the development server is threaded

    def get(self, key: tuple, render: Callable[[], tuple[str, str]]) -> tuple[str, str]:
        if self.size <= 0 or current_app.debug:
            return render()
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
        page = render()
        with self._lock:
            self._pages[key] = page
            while len(self._pages) > self.size:
                self._pages.popitem(last=False)
        return page

    def peek(self, key: tuple) -> tuple[str, str] | None:
        """The page if it is kept, without rendering it (no app context needed)."""
        with self._lock:
            return self._pages.get(key)


def pages() -> PageCache:
    return current_app.extensions["funnel_pages"]


def page_origin(environ: Mapping[str, Any]) -> tuple[str, str, str]:
    """What a page's links are made from besides its path and query: the scheme,
    the host and the path prefix (after ProxyFix). Every cache key holds them, so
    a page made for one host or prefix is never served for another."""
    return (str(environ.get("wsgi.url_scheme", "http")), get_host(environ),  # type: ignore[arg-type]
            str(environ.get("SCRIPT_NAME", "")))


def carried_ref(args: Mapping[str, str]) -> str:
    """The referring site the URL itself names (``ref``); the pages' own script
    adds the browser's referrer, so the bytes depend on the URL alone."""
    return (args.get("ref") or "")[:255]


def article_carry(args: Mapping[str, str]) -> dict[str, str]:
    """What the article's link to the landing page passes along: UTM, via and ``ref``."""
    carry = {key: value[:100] for key in UTM_ARGS if (value := args.get(key))}
    carry["via"] = "article"
    if ref := carried_ref(args):
        carry["ref"] = ref  # so a sign-up is credited to where the reader came from
    return carry


def article_key(origin: tuple, carry: dict[str, str]) -> tuple:
    return ("article", origin, tuple(carry.items()))


def landing_key(origin: tuple, args: Mapping[str, str], via: str) -> tuple:
    return ("landing", origin, carried_ref(args), via,
            tuple(args.get(f"utm_{k}", "")[:100] for k in UTM_KEYS))


def page_response(page: tuple[str, str], status: int = 200) -> Response:
    html, policy = page
    resp = Response(html, status, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = policy
    return resp


def made_page(html: str) -> tuple[str, str]:
    return html, hashed_policy(html)


@bp.get("/")
def article():
    count_visit("article", source_host())
    carry = article_carry(request.args)

    def render() -> tuple[str, str]:
        return made_page(render_template("article.html", plan_url=url_for("site.landing", **carry)))

    return page_response(pages().get(article_key(page_origin(request.environ), carry), render))


@bp.get("/free-plan")
def landing():
    via = arrived_via()
    count_visit("landing", source_host(), via)
    key = landing_key(page_origin(request.environ), request.args, via)
    ref, utm = key[2], key[4]

    def render() -> tuple[str, str]:
        form = SignupForm(formdata=None)
        form.referrer.data = ref
        form.via.data = via
        for k, v in zip(UTM_KEYS, utm, strict=True):
            getattr(form, f"utm_{k}").data = v
        return made_page(render_template("landing.html", form=form,
                                     consent_text=subscribers.CONSENT_TEXT))

    return page_response(pages().get(key, render))


SLOW_DOWN = ("Slow down a little: there have been a lot of sign-ups from your connection "
             "just now. Please wait a minute and send the form again; what you typed is "
             "still here.")


@bp.get("/check-your-inbox")
def check_inbox():
    return render_template("check_inbox.html")
