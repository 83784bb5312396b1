"""gunicorn's logger with our format and no personal data in the access log.

``deploy/gunicorn.conf.py`` names this class. Each access line carries the
request id the app put in ``X-Request-ID``; the request line, path, query and
referrer are redacted (a preferences page's address is in the Referer of every
form it posts), and the client address is left out.
"""

from __future__ import annotations

import json
import logging
import os

from gunicorn.glogging import Logger as _Logger

from funnel.operations.logs import formatter, redact

ACCESS_FORMAT = '%(m)s %(U)s %(s)s %(B)s bytes %(M)sms req=%({x-request-id}o)s ua="%(a)s"'


class Logger(_Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        self.json = os.environ.get("LOG_FORMAT", "text").lower() == "json"
        fmt = formatter("json" if self.json else "text")
        for handler in self.error_log.handlers:
            handler.setFormatter(fmt)
            handler.addFilter(_Defaults())
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["h"] = "-"
        atoms["r"] = redact(f"{atoms['m']} {environ.get('RAW_URI', '')} {atoms['H']}")
        for key, value in list(atoms.items()):
            if isinstance(value, str):
                atoms[key] = redact(value)
        atoms["q"] = "[query]" if atoms.get("q") else ""
        return atoms

    def access(self, resp, req, environ, request_time) -> None:
        if not self.json:
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return None
        a = self.atoms(resp, req, environ, request_time)
        self.access_log.info(json.dumps({
            "time": a["t"], "logger": "access", "method": a["m"], "path": a["U"],
            "status": int(a["s"]), "bytes": a["B"], "duration_ms": a["M"],
            "request_id": a.get("{x-request-id}o", "-"), "user_agent": a["a"],
        }))
        return None


class _Defaults(logging.Filter):
    """gunicorn's own records have no request; give them the fields our format uses."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", "-")
        record.subscriber = getattr(record, "subscriber", "-")
        record.msg = redact(record.getMessage())
        record.args = None
        return True
