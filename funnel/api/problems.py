"""RFC 9457 problem details: every API error is one of these, as application/problem+json."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from werkzeug.http import HTTP_STATUS_CODES

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in the API to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, type_: str = "about:blank",
                 title: str | None = None, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or HTTP_STATUS_CODES.get(status, "Error")
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status,
                                "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        resp = Response(json.dumps(body), status=self.status, mimetype=MEDIA_TYPE)
        resp.headers.update(self.headers)
        return resp


def from_status(status: int, detail: str | None = None) -> Response:
    return Problem(status, detail or HTTP_STATUS_CODES.get(status, "Error")).response()
