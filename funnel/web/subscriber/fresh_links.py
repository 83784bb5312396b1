"""Personal links that expire, and the fresh link an expired one offers.

Preference, plan and view links carry the moment they were signed (itsdangerous'
timestamp, set when the email was composed). They open their page for
``PERSONAL_LINK_DAYS`` (90) after that; the data export asks for a link from the
last ``DATA_EXPORT_LINK_HOURS`` (24). An expired link shows nothing personal: it
offers to email a fresh preference link to the address it was sent to. That email
is queued for the worker (system mail, with its per-address caps) and the button
is rate-limited per client; the answer is the same whoever the link was for.
Unsubscribe links are not here: they work for ever (one-click must never break).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, render_template

from funnel import runtime
from funnel.core import lifecycle
from funnel.core.tokens import BadToken, ExpiredToken
from funnel.http.extensions import limiter
from funnel.subscribers import actions as subscribers
from funnel.subscribers import system_mail
from funnel.web.subscriber.personal import PRIVATE_HEADERS, invalid_link

bp = Blueprint("fresh_links", __name__)

# What each expired page says the link was for.
PURPOSE_WORDS = {"preferences": "your preference page", "plan": "your plan",
                 "view": "this email on the web", "export": "downloading your data"}


def max_age(purpose: str) -> int:
    """Seconds a personal link of ``purpose`` opens its page ("export": the data export)."""
    cfg = current_app.config
    if purpose == "export":
        return int(timedelta(hours=float(cfg["DATA_EXPORT_LINK_HOURS"])).total_seconds())
    return int(timedelta(days=float(cfg["PERSONAL_LINK_DAYS"])).total_seconds())


class Expired(Exception):
    """The link is genuine but too old; ``answer`` is the page to show instead."""

    def __init__(self, answer) -> None:
        super().__init__("link expired")
        self.answer = answer


def load(purpose: str, token: str, *, age_of: str | None = None):
    """The payload of a live ``purpose`` link; raises Expired (with the page that
    offers a fresh link) or BadToken. ``age_of`` picks a stricter age ("export")."""
    try:
        return runtime.rt().composer.tokens.load(purpose, token,
                                                  max_age=max_age(age_of or purpose))
    except ExpiredToken as exc:
        raise Expired(expired_page(purpose, token, age_of or purpose)) from exc


def expired_page(purpose: str, token: str, why: str):
    days = int(float(current_app.config["PERSONAL_LINK_DAYS"]))
    hours = int(float(current_app.config["DATA_EXPORT_LINK_HOURS"]))
    return render_template("link_expired.html", purpose=purpose, token=token,
                           what=PURPOSE_WORDS[why], export=why == "export",
                           days=days, hours=hours), 410, PRIVATE_HEADERS


def queue_fresh_link(purpose: str, token: str) -> None:
    """Queue the fresh-link email for the subscriber a genuine (even expired) link
    names, when they are still on the list; otherwise do nothing, silently."""
    try:
        payload = runtime.rt().composer.tokens.load(purpose, token)
    except ExpiredToken as exc:
        payload = exc.payload  # the signature is good; only its age is up
    public_id = payload[0] if purpose == "view" and isinstance(payload, list) else payload
    s = runtime.session()
    sub = subscribers.subscriber_from_public_id(s, public_id)
    # Only to someone still receiving mail: never mail an address that left.
    if sub is not None and sub.status == lifecycle.CONFIRMED and system_mail.queue(
            s, sub, system_mail.FRESH_LINK, runtime.now()):
        s.commit()
        runtime.rt().wake.set()


@bp.post("/<any(preferences, plan, view):purpose>/<token>/fresh-link")
@limiter.limit(lambda: current_app.config.get("RATELIMIT_FRESH_LINK", "5 per hour"))
def fresh_link(purpose: str, token: str):
    try:
        runtime.rt().composer.tokens.load(purpose, token)
    except ExpiredToken:
        pass
    except BadToken:
        return invalid_link()
    queue_fresh_link(purpose, token)
    return render_template("link_fresh_sent.html"), 200, PRIVATE_HEADERS
