"""The public site: the article, the landing page and the sign-up."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit
from zoneinfo import available_timezones

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from funnel import runtime, subscribers
from funnel.inputs import FunnelError
from funnel.models import Visit
from funnel.web.extensions import limiter
from funnel.web.forms import SignupForm

bp = Blueprint("site", __name__)

UTM_KEYS = ("source", "medium", "campaign", "term", "content")
@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database: once per process


def valid_zone(name: str | None) -> str:
    return name if name in _zones() else runtime.rt().settings.default_timezone


def source_host() -> str | None:
    """The site that sent the visitor: the Referer's host, or, when they came
    through our own article, the host the article passed along as ``ref``.
    Only the host is kept: a full referring URL can carry personal data."""
    ref = request.referrer or ""
    host = urlsplit(ref).hostname if ref else None
    if host and host == request.host.split(":")[0]:
        host = request.args.get("ref") or None  # moving around our own site is not a source
    return host[:255] if host else None


def count_visit(page: str) -> None:
    """Count a page view with no personal data: the referring site and UTM only."""
    s = runtime.session()
    s.add(Visit(
        page=page, at=runtime.now(), referrer_host=source_host(),
        utm_source=request.args.get("utm_source", "")[:100] or None,
        utm_medium=request.args.get("utm_medium", "")[:100] or None,
        utm_campaign=request.args.get("utm_campaign", "")[:100] or None,
    ))
    s.commit()


def _utm_query() -> dict[str, str]:
    return {f"utm_{k}": request.args[f"utm_{k}"][:100] for k in UTM_KEYS
            if request.args.get(f"utm_{k}")}


@bp.get("/")
def article():
    count_visit("article")
    carry = _utm_query()
    host = source_host()
    if host:
        carry["ref"] = host  # so a sign-up is credited to where the reader came from
    return render_template("article.html", plan_url=url_for("site.landing", **carry))


@bp.get("/free-plan")
def landing():
    count_visit("landing")
    form = SignupForm(formdata=None)
    form.referrer.data = source_host() or ""
    for k in UTM_KEYS:
        getattr(form, f"utm_{k}").data = request.args.get(f"utm_{k}", "")[:100]
    return render_template("landing.html", form=form, consent_text=subscribers.CONSENT_TEXT)


@bp.post("/free-plan")
@limiter.limit(lambda: current_app.config["RATELIMIT_SIGNUP"], methods=["POST"])
def signup():
    form = SignupForm()
    if not form.validate():
        if "csrf_token" in form.errors:
            from funnel.web.errors import render_error

            return render_error(400, "This form has expired. Please reload the page and try again.")
        return render_template("landing.html", form=form, consent_text=subscribers.CONSENT_TEXT), 422
    if form.website.data:
        # A bot filled the honeypot: answer like a success, store nothing.
        return redirect(url_for("site.check_inbox"), code=303)
    s = runtime.session()
    meta = subscribers.SignupMeta(
        ip=request.remote_addr,
        user_agent=request.user_agent.string,
        page=request.url,
        referrer=form.referrer.data,
        utm={k: getattr(form, f"utm_{k}").data or "" for k in UTM_KEYS},
    )
    try:
        sub = subscribers.subscribe(
            s, email=form.email.data, first_name=form.first_name.data,
            timezone=valid_zone(form.tz.data), meta=meta, now=runtime.now(),
        )
    except FunnelError as exc:
        getattr(form, exc.field).errors = [str(exc)]
        return render_template("landing.html", form=form, consent_text=subscribers.CONSENT_TEXT), 422
    if sub is not None:
        runtime.rt().wake.set()  # the worker sends it; the embedded one at once
    return redirect(url_for("site.check_inbox"), code=303)


@bp.get("/check-your-inbox")
def check_inbox():
    return render_template("check_inbox.html")
