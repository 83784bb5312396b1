"""Error pages in the site's own style."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

MESSAGES = {
    400: ("That request didn't work", "Something in it was missing or malformed."),
    403: ("Not allowed", "You don't have access to this page."),
    404: ("Page not found", "The page you asked for isn't here. It may have moved."),
    405: ("Not allowed", "That action isn't available on this page."),
    413: ("Too much", "That request was larger than we accept."),
    422: ("Please check the form", "Some of what you entered couldn't be used."),
    429: ("Slow down a little", "Too many requests from your connection. Wait a minute and try again."),
    500: ("Something went wrong on our side", "Nothing you did. Please try again in a minute."),
    503: ("Back in a minute", "We can't reach our records right now. Please try again in a minute."),
}


def render_error(code: int, detail: str | None = None):
    title, text = MESSAGES.get(code, MESSAGES[500] if code >= 500 else MESSAGES[400])
    return render_template("error.html", code=code, title=title, text=detail or text), code


def init_app(app: Flask, elsewhere: Mapping[str, Callable[[int], Any]] | None = None) -> None:
    """``elsewhere``: path prefixes answered in another front's own form (the API's
    problem documents), since routing errors never reach that front's handlers."""
    others = dict(elsewhere or {})

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return render_error(
            400, "This form has expired or was sent from elsewhere. Please go back, "
            "reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        for prefix, render in others.items():
            if request.path.startswith(prefix):
                return render(exc.code or 500)
        return render_error(exc.code or 500)
