"""Pages reached from links in emails: confirm, unsubscribe, preferences, view."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, render_template, request
from markupsafe import Markup

from funnel import runtime, services
from funnel.core import lifecycle
from funnel.links import PATHS
from funnel.models import Delivery
from funnel.web.errors import render_error
from funnel.web.extensions import csrf
from sqlalchemy import select

bp = Blueprint("links", __name__)


def _meta() -> services.SignupMeta:
    return services.SignupMeta(ip=request.remote_addr, user_agent=request.user_agent.string)


def _invalid_link():  # type: ignore[no-untyped-def]
    return render_error(
        400, "This link isn't valid. It may have been cut short when it was copied: "
        "try opening it straight from the email.")


@bp.get(PATHS["confirm"])
def confirm(token: str):
    r = runtime.rt()
    result = services.confirm(
        runtime.session(), r.composer, token, now=runtime.now(),
        max_age=timedelta(days=r.settings.confirm_max_age_days), meta=_meta(),
    )
    if result.outcome == "confirmed":
        r.wake.set()
    if result.outcome in ("confirmed", "already"):
        return render_template("welcome.html", already=result.outcome == "already")
    if result.outcome == "expired":
        return render_template("confirm_expired.html", token=token), 410
    return _invalid_link()


@bp.post("/confirm/<token>/resend")
def resend_confirmation(token: str):
    """An expired confirmation link offers a fresh one, sent to the same address."""
    r = runtime.rt()
    s = runtime.session()
    try:
        public_id = r.composer.tokens.load("confirm", token)
    except services.ExpiredToken as exc:
        public_id = exc.payload  # the signature is good; only its age is up
    except services.BadToken:
        return _invalid_link()
    sub = services.subscriber_from_public_id(s, public_id)
    if sub is not None and sub.status == lifecycle.PENDING:
        services.send_confirmation(s, r.composer, r.transport, sub, runtime.now())
    return render_template("check_inbox.html")


@bp.route(PATHS["unsubscribe"], methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail providers POST here with no session and no token
def unsubscribe(token: str):
    s = runtime.session()
    sub = services.subscriber_from_token(s, runtime.rt().composer, "unsubscribe", token)
    if sub is None:
        return _invalid_link()
    if request.method == "GET":
        # Link scanners prefetch GETs, so a GET only shows the button.
        return render_template("unsubscribe.html", token=token,
                               done=sub.status == lifecycle.UNSUBSCRIBED)
    reason = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
    services.unsubscribe(s, sub, now=runtime.now(), reason=reason, meta=_meta())
    return render_template("unsubscribe.html", token=token, done=True), 200


@bp.get(PATHS["view"])
def view(token: str):
    r = runtime.rt()
    try:
        payload = r.composer.tokens.load("view", token)
        public_id, delivery_id = payload
    except (services.BadToken, ValueError, TypeError):
        return _invalid_link()
    s = runtime.session()
    sub = services.subscriber_from_public_id(s, public_id)
    d = s.scalar(select(Delivery).where(Delivery.public_id == delivery_id))
    if sub is None or d is None or d.subscriber_id != sub.id:
        abort(404)
    from funnel.core.sequence import load_sequence

    step = load_sequence(r.settings.emails_dir).get(d.step_slug)
    if step is None:
        abort(404)
    rendered = r.composer.render(step.source, sub, d.public_id)
    resp = Markup(rendered.html)
    return resp, 200, {"X-Robots-Tag": "noindex"}
