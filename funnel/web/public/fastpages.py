"""The article and the landing page replayed before Flask's request handling.

Flask's request context, hooks and response object cost two or three times what
a cached page does (docs/pages.md). The two public pages hold nothing of the
visitor's (no token, no nonce, no cookie), so once Flask has answered a page,
its answer is the answer for everyone asking the same thing. This WSGI layer
sits around the Flask app (inside ProxyFix, so it sees the same scheme and
host) and:

- on a ``GET /`` or ``GET /free-plan`` it has not seen, lets Flask answer and
  keeps that answer, status, headers and body as Flask sent them, under the
  page's cache key (``site.article_key`` / ``site.landing_key``: scheme, host,
  path prefix and the query values the page depends on);
- on the next such request, sends the kept answer with a fresh request id
  (``logs.request_id``, as Flask's hook makes it) and counts the visit into the
  same buffer, with the same source, as the views do (``site.visit_row``).

No header is made here: every one comes from Flask's own hooks, so a new hook is
replayed without a change here. An answer is only kept when it is a 200 that sets
no cookie and does not vary on one. Anything else goes to Flask: other methods
and paths, debug mode, ``FAST_PAGES`` off, ``PAGE_CACHE_SIZE`` 0, an app with
``SERVER_NAME``, ``TRUSTED_HOSTS`` or host matching. Only public APIs of
Werkzeug are used. ``tests/test_fast_pages.py`` compares the two answers byte for
byte, with hypothesis drawing the requests.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from werkzeug.exceptions import SecurityError

from funnel.operations.logs import request_id
from funnel.web.public import site

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
REQUEST_ID = "x-request-id"


class Kept:
    """Flask's answer to one page key: its headers with the request id's place."""

    __slots__ = ("before", "after", "body")

    def __init__(self, headers: list[tuple[str, str]], body: bytes) -> None:
        at = next((i for i, (k, _) in enumerate(headers) if k.lower() == REQUEST_ID), len(headers))
        self.before, self.after = headers[:at], headers[at + 1:]
        self.body = body

    def headers(self, rid: str) -> list[tuple[str, str]]:
        return [*self.before, ("X-Request-ID", rid), *self.after]


class FastPages:
    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app  # Flask's own handling: everything not answered here
        self._kept: OrderedDict[tuple, Kept] = OrderedDict()
        self._lock = threading.Lock()  # gthread workers share it
        self._on: bool | None = None

    def _setup(self) -> bool:
        """Read the settings once, at the first request (the config is final by then)."""
        config = self.app.config
        self.size = int(config["PAGE_CACHE_SIZE"])
        self.visits = self.app.extensions["funnel_visits"]
        self.clock = self.app.extensions["funnel"].clock
        # Setups where Flask may answer one URL differently by host: leave them to it.
        return bool(config.get("FAST_PAGES", True)) and self.size > 0 \
            and not config.get("TRUSTED_HOSTS") and not config.get("SERVER_NAME") \
            and not self.app.url_map.host_matching

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if (path == "/" or path == "/free-plan") and environ.get("REQUEST_METHOD") == "GET":
            if self._on is None:
                self._on = self._setup()
            if self._on and not self.app.debug:
                found = self._find(path, environ)
                if found is not None:
                    key, visit = found
                    kept = self._kept.get(key)
                    if kept is None:
                        return self._keep(key, environ, start_response)
                    start_response("200 OK", kept.headers(request_id(environ)))
                    self.visits.add(site.visit_row(*visit))
                    return [kept.body]
        return self.wsgi_app(environ, start_response)

    def _find(self, path: str, environ: dict[str, Any]) -> tuple[tuple, tuple] | None:
        """The page's cache key and what its visit row is made of, or None for Flask."""
        qs = environ.get("QUERY_STRING")
        args: dict[str, str] = {}
        if qs:
            # As request.args parses it; its .get() gives a name's first value.
            try:
                pairs = parse_qsl(qs.encode("latin1").decode(), keep_blank_values=True,
                                  errors="werkzeug.url_quote")
            except UnicodeError:
                return None
            for name, value in pairs:
                args.setdefault(name, value)
        try:
            origin = site.page_origin(environ)
            host = site.referring_host(environ.get("HTTP_REFERER"), lambda: origin[1], args)
        except SecurityError:
            return None  # Flask's 400
        if path == "/":
            return (site.article_key(origin, site.article_carry(args)),
                    ("article", self.clock(), host, None, args))
        via = site.arrived_via(args)
        return (site.landing_key(origin, args, via),
                ("landing", self.clock(), host, via, args))

    def _keep(self, key: tuple, environ: dict[str, Any],
              start_response: StartResponse) -> Iterable[bytes]:
        """Flask answers (and counts the visit); a plain 200 is kept for the next visitor."""
        status, headers, body = answer_of(self.wsgi_app, environ, start_response)
        if status.startswith("200 ") and shared_by_all(headers):
            with self._lock:
                self._kept[key] = Kept(list(headers), body)
                while len(self._kept) > self.size:  # as bounded as the page cache
                    self._kept.popitem(last=False)
        return [body]


def answer_of(wsgi_app: WSGIApp, environ: dict[str, Any], start_response: StartResponse
              ) -> tuple[str, list[tuple[str, str]], bytes]:
    """Flask's answer, passed on to the client and also returned whole, so that a
    layer can keep it for the next requests."""
    seen: list[Any] = []

    def watching(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
        seen[:] = [status, headers]
        return start_response(status, headers, exc_info) if exc_info else \
            start_response(status, headers)

    answer = wsgi_app(environ, watching)
    try:
        body = b"".join(answer)
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()
    status, headers = seen
    return status, headers, body


def shared_by_all(headers: list[tuple[str, str]]) -> bool:
    """An answer that sets no cookie and does not vary by one is everybody's."""
    names = {k.lower() for k, _ in headers}
    vary = ",".join(v for k, v in headers if k.lower() == "vary").lower()
    return "set-cookie" not in names and "cookie" not in vary


def init_app(app: Flask) -> None:
    """Wraps the app's WSGI callable; call before anything that must see requests
    first (ProxyFix in ``headers.init_app``), so those wrap this layer."""
    layer = FastPages(app, app.wsgi_app)
    app.extensions["funnel_fastpages"] = layer
    app.wsgi_app = layer  # type: ignore[method-assign]
