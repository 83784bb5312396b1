"""Pages reached from links in emails: confirm, unsubscribe, view in browser.

The preference page, also linked from every email, lives in ``web.preferences``.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, render_template, request
from markupsafe import Markup
from sqlalchemy import select

from funnel import runtime
from funnel.core import lifecycle
from funnel.core.sequence import load_sequence
from funnel.core.tokens import BadToken, ExpiredToken
from funnel.http.extensions import csrf
from funnel.mail.links import PATHS
from funnel.mail.sending import DRIP
from funnel.models import Delivery
from funnel.subscribers import actions as subscribers
from funnel.web.subscriber import fresh_links
from funnel.web.subscriber.personal import invalid_link, request_meta, try_confirmation

bp = Blueprint("links", __name__)


def _signed(token: str, purpose: str) -> bool:
    try:
        runtime.rt().composer.tokens.load(purpose, token)
    except BadToken:
        return False
    return True


@bp.get(PATHS["confirm"])
def confirm_page(token: str):
    """Mail scanners open every link, so opening this one only shows the button."""
    r = runtime.rt()
    max_age = int(timedelta(days=r.settings.confirm_max_age_days).total_seconds())
    try:
        public_id = r.composer.tokens.load("confirm", token, max_age=max_age)
    except ExpiredToken:
        return render_template("confirm_expired.html", token=token), 410
    except BadToken:
        return invalid_link()
    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None or sub.status not in (lifecycle.PENDING, lifecycle.CONFIRMED):
        return invalid_link()
    if sub.status == lifecycle.CONFIRMED:
        return _welcome(sub, already=True)
    return render_template("confirm.html")


def _welcome(sub, *, already: bool):
    # Once the first email went, "it is on its way" would be untrue.
    first_sent = any(d.sent_at is not None for d in sub.deliveries if d.kind == DRIP)
    return render_template("welcome.html", already=already, first_sent=first_sent, sub=sub)


@bp.post(PATHS["confirm"])
def confirm(token: str):
    r = runtime.rt()
    result = subscribers.confirm(
        runtime.session(), r.composer, token, now=runtime.now(),
        max_age=timedelta(days=r.settings.confirm_max_age_days), meta=request_meta(),
    )
    if result.outcome == "confirmed":
        r.wake.set()
    if result.outcome in ("confirmed", "already"):
        return _welcome(result.subscriber, already=result.outcome == "already")
    if result.outcome == "expired":
        return render_template("confirm_expired.html", token=token), 410
    return invalid_link()


@bp.post("/confirm/<token>/resend")
def resend_confirmation(token: str):
    """An expired confirmation link offers a fresh one, sent to the same address."""
    r = runtime.rt()
    s = runtime.session()
    try:
        public_id = r.composer.tokens.load("confirm", token)
    except ExpiredToken as exc:
        public_id = exc.payload  # the signature is good; only its age is up
    except BadToken:
        return invalid_link()
    sub = subscribers.subscriber_from_public_id(s, public_id)
    if sub is not None and sub.status == lifecycle.PENDING:
        try_confirmation(sub)
    return render_template("check_inbox.html")


@bp.route(PATHS["unsubscribe"], methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail providers POST here with no session and no token
def unsubscribe(token: str):
    s = runtime.session()
    sub = subscribers.subscriber_from_token(s, runtime.rt().composer, "unsubscribe", token)
    if sub is None:
        if request.method == "POST" and _signed(token, "unsubscribe"):
            # Erased: there is nothing left to mail, so the one-click POST succeeds.
            return render_template("unsubscribe.html", token=token, done=True), 200
        return invalid_link()
    if request.method == "GET":
        # Link scanners prefetch GETs, so a GET only shows the button.
        return render_template("unsubscribe.html", token=token,
                               done=sub.status == lifecycle.UNSUBSCRIBED)
    reason = "one-click" if request.form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
    subscribers.unsubscribe(s, sub, now=runtime.now(), reason=reason, meta=request_meta())
    return render_template("unsubscribe.html", token=token, done=True), 200


@bp.get(PATHS["view"])
def view(token: str):
    r = runtime.rt()
    try:
        # Expires like a preference link: the page it shows carries fresh ones.
        payload = fresh_links.load("view", token)
        public_id, delivery_id = payload
    except fresh_links.Expired as exc:
        return exc.answer
    except (BadToken, ValueError, TypeError):
        return invalid_link()
    s = runtime.session()
    sub = subscribers.subscriber_from_public_id(s, public_id)
    d = s.scalar(select(Delivery).where(Delivery.public_id == delivery_id))
    if sub is None or d is None or d.subscriber_id != sub.id:
        abort(404)
    step = load_sequence(r.settings.emails_dir).get(d.step_slug)
    if step is None:
        abort(404)
    rendered = r.composer.render(step.source, sub, d.public_id)
    resp = Markup(rendered.html)
    return resp, 200, {"X-Robots-Tag": "noindex"}
