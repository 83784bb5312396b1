"""Flask extensions shared by the blueprints: CSRF protection and rate limits."""

from __future__ import annotations

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# The landing page and the embedded form share one sign-up budget per IP.
signup_limit = limiter.shared_limit(lambda: current_app.config["RATELIMIT_SIGNUP"],
                                    scope="signup", methods=["POST"])


def init_app(app: Flask) -> None:
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    csrf.init_app(app)
    limiter.init_app(app)

    @app.after_request
    def _security_headers(resp):  # type: ignore[no-untyped-def]
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        if "frame-ancestors" not in resp.headers.get("Content-Security-Policy", ""):
            # Pages that may be framed (the embeddable form) say by whom in their CSP.
            resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp
