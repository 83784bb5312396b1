"""Flask extensions shared by the blueprints: CSRF protection and rate limits.

Response headers are set in ``web.headers``."""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from funnel.web.ratelimits import remote_key

csrf = CSRFProtect()
# Counted per client as web.ratelimits sees it: an IPv4 address or an IPv6 /64.
limiter = Limiter(key_func=remote_key, default_limits=[])


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    csrf.init_app(app)
    limiter.init_app(app)
