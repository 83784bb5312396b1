"""Log lines: one per event, tagged with the request id, as text or JSON (LOG_FORMAT).

Personal links carry a signed token that works as a password for that person's
preferences, so no token reaches a log: paths are redacted, query strings dropped,
and anything shaped like an email address replaced. Errors about a subscriber
name them by their opaque public id (``extra={"subscriber": public_id}``).
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from typing import Any

from flask import Flask, g, has_request_context, request

# The personal-link routes (funnel.links.PATHS) plus anything else shaped like them.
_TOKEN_PATH = re.compile(r"(/(?:confirm|unsubscribe|preferences|view|plan)/)[^/?#\s\"']+")
_EMAIL = re.compile(r"[\w.!#$%&'*+=^`{|}~-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+")
_QUERY = re.compile(r"\?[^\s\"']*")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# Attributes every LogRecord has; anything else was passed in ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_HANDLER_MARK = "_funnel_handler"


def redact(text: str) -> str:
    """The same text with link tokens, query strings and addresses taken out."""
    text = _TOKEN_PATH.sub(r"\1[token]", text)
    text = _QUERY.sub("?[query]", text)
    return _EMAIL.sub("[address]", text)


def current_request_id() -> str:
    if has_request_context():
        return getattr(g, "request_id", "-")
    return "-"


class ContextFilter(logging.Filter):
    """Adds the request id and scrubs the message of tokens and addresses."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "subscriber"):
            record.subscriber = "-"
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [req %(request_id)s] [sub %(subscriber)s] "
            "%(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))  # tracebacks too


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any ``extra`` fields kept."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now, so test capture and gunicorn's
    redirection both see the lines."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(fmt: str = "text", level: str = "INFO") -> None:
    """Route every logger through one handler with our format (safe to call again)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(h)
    handler = _StderrHandler()
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Each readiness check reads the migration state; alembic would say so at INFO.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    # The development server's access lines go through the same scrubbing.
    werkzeug = logging.getLogger("werkzeug")
    if not any(isinstance(f, ContextFilter) for f in werkzeug.filters):
        werkzeug.addFilter(ContextFilter())


def request_id(environ: dict[str, Any]) -> str:
    """The proxy's X-Request-ID when it looks like one, else a new id."""
    incoming = environ.get("HTTP_X_REQUEST_ID", "")
    # Unique, not secret: random's generator instead of a getrandom() system
    # call per request (uuid4 cost up to 80 µs on a busy machine). Python
    # reseeds it in each forked worker, so workers do not repeat each other.
    return incoming if _REQUEST_ID.match(incoming) else f"{random.getrandbits(128):032x}"


def init_app(app: Flask) -> None:
    """A request id for every request (taken from the proxy's X-Request-ID when it
    looks like one), echoed in the response so access log and app log line up."""
    configure(app.config.get("LOG_FORMAT", "text"), app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _request_id() -> None:
        g.request_id = request_id(request.environ)

    @app.after_request
    def _echo(resp):
        resp.headers["X-Request-ID"] = getattr(g, "request_id", "-")
        return resp
