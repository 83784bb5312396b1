"""Refuse a NUL byte anywhere in a request's path, query string or form, before any
view sees it: PostgreSQL cannot keep U+0000 in text, and a search, a sign-up's
``utm_source`` or an API filter carrying one used to end in a 500 deep inside a
query. The rule itself is ``funnel.inputs.nul_problem`` (JSON bodies are checked
with it too, in ``funnel.api.routes.body``)."""

from __future__ import annotations

from flask import Flask, Response, request

from funnel.core.inputs import nul_problem


def problem_in_request() -> str | None:
    if "\x00" in request.path:
        return nul_problem(request.path, "the address")
    for name, value in request.args.items(multi=True):
        problem = nul_problem(name, "the query") or nul_problem(value, f"'{name}'")
        if problem:
            return problem
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        for name, value in request.form.items(multi=True):
            problem = nul_problem(name, "the form") or nul_problem(value, f"'{name}'")
            if problem:
                return problem
    return None


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul() -> Response | tuple | None:
        problem = problem_in_request()
        if problem is None:
            return None
        if request.path.startswith("/api/"):
            from funnel.api.problems import Problem

            return Problem(400, problem, title="Invalid character").response()
        from funnel.web.errors import render_error

        return render_error(400, problem)
