"""The article and the landing page answered before Flask's request handling.

Flask's request context, hooks and response object cost two or three times what
rendering a cached page does (see README, Page speed). This WSGI layer sits
around the Flask app (inside ProxyFix, so it sees the same client and host) and
answers ``GET /`` and ``GET /free-plan`` from the pages Flask already rendered
into the page cache (``site.PageCache``), with the headers Flask would add:

- the same security headers (``headers.fixed_headers``) and Content-Security-Policy,
  with a nonce of this response's own where the page has an inline script;
- the same request id (``logs.request_id``);
- on the landing page, the same CSRF token and session cookie Flask-WTF and
  Flask's session would make: Flask's own session serializer and Flask-WTF's
  itsdangerous serializer and salt, so the sign-up POST validates unchanged;
  ``Vary: Cookie`` as Flask sends for a page that read the session.

The visit is counted into the same buffer, with the same attribution, as the
views count it (``site.visit_row``). Anything it cannot answer exactly goes to
Flask: another method or path, a page not yet rendered (Flask renders it and the
next visitor gets it from here), a session cookie holding more than the CSRF
value (an admin's), an app mounted under a prefix, debug mode, a cache of size 0.
``tests/test_fast_pages.py`` compares the two answers byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin
from werkzeug.exceptions import SecurityError
from werkzeug.http import dump_cookie, parse_cookie
from werkzeug.wsgi import get_host

from funnel.config import is_production
from funnel.operations.logs import request_id
from funnel.web import headers
from funnel.web.public import site

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HTML = ("Content-Type", "text/html; charset=utf-8")
# What itsdangerous's URL-safe output is made of: no quoting needed in a cookie.
_COOKIE_SAFE = re.compile(r"[A-Za-z0-9_.\-]+")
_MARK = "fastpagesvalue"
# Payloads up to this many bytes are signed without trying zlib on them (see quick_dumps).
SHORT_PAYLOAD = 64


class Page:
    """A cached page as bytes: the text between its per-response values, and their names."""

    __slots__ = ("texts", "names", "nonce")

    def __init__(self, pieces: tuple[str, ...]) -> None:
        self.texts = [p.encode() for p in pieces[0::2]]
        self.names = pieces[1::2]
        self.nonce = "nonce" in self.names

    def body(self, values: dict[str, bytes]) -> bytes:
        if not self.names:
            return self.texts[0]
        out = [self.texts[0]]
        for name, text in zip(self.names, self.texts[1:], strict=True):
            out += (values[name], text)
        return b"".join(out)


class _KeptKeySigner(TimestampSigner):
    """itsdangerous's TimestampSigner deriving its signing key once: the key depends
    only on the secret key and the salt, and deriving it is an HMAC per signature."""

    _kept: bytes | None = None

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        if secret_key is not None:
            return super().derive_key(secret_key)
        if self._kept is None:
            self._kept = super().derive_key()
        return self._kept


def quick_dumps(serializer: URLSafeTimedSerializer) -> Callable[[Any], str]:
    """``serializer.dumps``, the same bytes for a few microseconds less: its signer
    made once, with the derived key kept and HMAC on hashlib's C hash of the same
    name (itsdangerous passes a Python wrapper, which sends ``hmac`` down its slow
    path). A serializer with another signer class gets its own ``dumps``."""
    if serializer.signer is not TimestampSigner:
        return serializer.dumps
    kwargs = dict(serializer.signer_kwargs)
    wrapper = kwargs.get("digest_method") or TimestampSigner.default_digest_method
    c_hash = getattr(hashlib, wrapper().name, None)
    if c_hash is not None:
        kwargs["digest_method"] = c_hash
    signer = _KeptKeySigner(serializer.secret_keys, salt=serializer.salt, **kwargs)

    plain = super(URLSafeSerializerMixin, serializer).dump_payload  # the JSON, before zlib

    def dumps(obj: Any) -> str:
        payload = plain(obj)
        if len(payload) > SHORT_PAYLOAD:
            payload = serializer.dump_payload(obj)
        else:
            # itsdangerous deflates every payload and keeps the result only when it is
            # shorter: for a CSRF token (40 random hex digits) in so few bytes it never
            # is (0 of 300,000 tried), and the deflating was a fifth of a landing page.
            payload = base64_encode(payload)
        return signer.sign(payload).decode("utf-8")

    return dumps


class FastPages:
    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app  # Flask's own handling: everything not answered here
        self._pages: dict[tuple, Page] = {}
        self._lock = threading.Lock()
        self._ready = False
        self._off = False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if ((path == "/" or path == "/free-plan") and environ.get("REQUEST_METHOD") == "GET"
                and not environ.get("SCRIPT_NAME")):
            answer = self._answer(path, environ)
            if answer is not None:
                start_response("200 OK", answer[0])
                return [answer[1]]
        return self.wsgi_app(environ, start_response)

    def _setup(self) -> None:
        """Read the settings once, at the first request (the config is final by then)."""
        app, config = self.app, self.app.config
        si = app.session_interface
        serializer = (si.get_signing_serializer(app)
                      if isinstance(si, SecureCookieSessionInterface) else None)
        secret = config.get("WTF_CSRF_SECRET_KEY", app.secret_key)
        # Whatever would make Flask answer differently from one request to the
        # next beyond what is handled here: leave those setups to Flask.
        self._off = (serializer is None or not secret or not config.get("WTF_CSRF_ENABLED", True)
                     or bool(config.get("TRUSTED_HOSTS")) or bool(config.get("SERVER_NAME"))
                     or app.url_map.host_matching or int(config["PAGE_CACHE_SIZE"]) <= 0)
        if self._off or serializer is None or not isinstance(si, SecureCookieSessionInterface):
            self._ready = True
            return
        self.cache: site.PageCache = app.extensions["funnel_pages"]
        self.visits = app.extensions["funnel_visits"]
        self.clock = app.extensions["funnel"].clock
        self.size = max(int(config["PAGE_CACHE_SIZE"]), 1)
        self.fixed = headers.fixed_headers(is_production(config))
        self.frame = [("X-Frame-Options", "DENY")]  # the CSP says frame-ancestors 'none'
        self.sessions: URLSafeTimedSerializer = serializer
        self.session_dumps = quick_dumps(serializer)
        self.session_age = int(app.permanent_session_lifetime.total_seconds())
        # Flask-WTF's serializer and salt for the token.
        self.csrf_dumps = quick_dumps(URLSafeTimedSerializer(secret or "", salt="wtf-csrf-token"))
        self.csrf_field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
        self.cookie_name = si.get_cookie_name(app)
        # A new visitor's session is not permanent: no expiry, as Flask sends it.
        cookie = dump_cookie(
            self.cookie_name, _MARK, expires=None, path=si.get_cookie_path(app),
            domain=si.get_cookie_domain(app), secure=si.get_cookie_secure(app),
            httponly=si.get_cookie_httponly(app), samesite=si.get_cookie_samesite(app),
            partitioned=si.get_cookie_partitioned(app),
            max_size=int(config.get("MAX_COOKIE_SIZE", 4093)))
        self.cookie_before, self.cookie_after = cookie.split(_MARK)
        self._ready = True  # last: a second thread (gthread) may be reading by now

    def _page(self, key: tuple) -> Page | None:
        page = self._pages.get(key)
        if page is None:
            pieces = self.cache.peek(key)
            if pieces is None:
                return None  # Flask renders it this time
            page = Page(pieces)
            with self._lock:  # gthread: two misses must not evict the same page
                self._pages[key] = page
                while len(self._pages) > self.size:  # as bounded as the page cache
                    self._pages.pop(next(iter(self._pages)))
        return page

    def _answer(self, path: str, environ: dict[str, Any]) -> tuple[list, bytes] | None:
        if not self._ready:
            self._setup()
        if self._off or self.app.debug:
            return None
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
            host = site.referring_host(environ.get("HTTP_REFERER"), lambda: get_host(environ), args)
        except SecurityError:
            return None  # Flask's 400
        if path == "/":
            return self._article(environ, args, host)
        return self._landing(environ, args, host or "")

    def _headers(self, environ: dict[str, Any], body: bytes, nonce: str | None) -> list:
        return [HTML, ("Content-Length", str(len(body))), ("X-Request-ID", request_id(environ)),
                *self.fixed, ("Content-Security-Policy", headers.content_security_policy(nonce)),
                *self.frame]

    def _article(self, environ: dict[str, Any], args: dict[str, str],
                 host: str | None) -> tuple[list, bytes] | None:
        page = self._page(site.article_key(site.article_carry(args, host)))
        if page is None:
            return None
        nonce = secrets.token_urlsafe(16) if page.nonce else None
        body = page.body({"nonce": nonce.encode()} if nonce else {})
        self.visits.add(site.visit_row("article", self.clock(), host, None, args))
        return self._headers(environ, body, nonce), body

    def _landing(self, environ: dict[str, Any], args: dict[str, str],
                 host: str) -> tuple[list, bytes] | None:
        via = site.arrived_via(args)
        page = self._page(site.landing_key(args, host, via))
        if page is None:
            return None
        raw = None
        cookie = environ.get("HTTP_COOKIE")
        if cookie and (value := parse_cookie(cookie).get(self.cookie_name)):
            try:
                data = self.sessions.loads(value, max_age=self.session_age)
            except BadSignature:
                data = None  # Flask starts a new session, as below
            if data is not None:
                if not isinstance(data, dict) or list(data) != [self.csrf_field] \
                        or not isinstance(data[self.csrf_field], str):
                    return None  # a session with more in it (an admin's): Flask's to handle
                raw = data[self.csrf_field]
        set_cookie = []
        if raw is None:
            # What Flask-WTF puts in a new session, and the cookie Flask would send for it.
            raw = hashlib.sha1(os.urandom(64)).hexdigest()
            value = self.session_dumps({self.csrf_field: raw})
            if not _COOKIE_SAFE.fullmatch(value):
                return None
            set_cookie = [("Set-Cookie", self.cookie_before + value + self.cookie_after)]
        nonce = secrets.token_urlsafe(16)
        body = page.body({"token": self.csrf_dumps(raw).encode(), "nonce": nonce.encode()})
        self.visits.add(site.visit_row("landing", self.clock(), host or None, via, args))
        return [*self._headers(environ, body, nonce), ("Vary", "Cookie"), *set_cookie], body


def init_app(app: Flask) -> None:
    """Wraps the app's WSGI callable; call before anything that must see requests
    first (ProxyFix in ``headers.init_app``), so those wrap this layer."""
    layer = FastPages(app, app.wsgi_app)
    app.extensions["funnel_fastpages"] = layer
    app.wsgi_app = layer  # type: ignore[method-assign]
