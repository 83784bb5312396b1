"""Flask extensions shared by the blueprints: CSRF protection and rate limits.

Response headers are set in ``web.headers``."""

from __future__ import annotations

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer

from funnel.http.ratelimits import remote_key

csrf = CSRFProtect()
# Counted per client as web.ratelimits sees it: an IPv4 address or an IPv6 /64.
limiter = Limiter(key_func=remote_key, default_limits=[])


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once per set of keys
    instead of on every request (every page opens the session)."""

    _made: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        made = self._made
        if made is None or made[0] != keys:
            made = self._made = (keys, super().get_signing_serializer(app))
        return made[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # A first visit has no cookie at all: nothing to parse or verify.
        if "HTTP_COOKIE" not in request.environ and self.get_signing_serializer(app) is not None:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.session_interface = CookieSessions()
    csrf.init_app(app)
    limiter.init_app(app)
    # The limits here are all on decorated views, which check them in their own
    # wrapper; the app-wide hook only looks for default limits (there are none)
    # and cost a quarter of every page's time (profile in README, Benchmarks).
    hooks = app.before_request_funcs.get(None, [])
    hooks[:] = [f for f in hooks if getattr(f, "__func__", None) is not type(limiter)._check_request_limit]

    @app.before_request
    def _blueprint_limits() -> None:
        # The API's per-key limit is set on its blueprint, which only this hook checks.
        if request.blueprint == "api":
            limiter._check_request_limit(in_middleware=True)

