"""The preference page, linked from every email's footer.

No login: the signed token is the key. GETs only show; every change is a
CSRF-protected POST that redirects back to the page, which confirms what changed.
"""

from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for

from funnel import runtime
from funnel.core import lifecycle, timezones
from funnel.core.inputs import FunnelError
from funnel.core.schedule import zone
from funnel.core.sequence import load_sequence
from funnel.core.tokens import BadToken
from funnel.mail.links import PATHS
from funnel.subscribers import actions as subscribers
from funnel.subscribers import privacy
from funnel.web.errors import render_error
from funnel.web.subscriber import fresh_links
from funnel.web.subscriber.personal import (
    PRIVATE_HEADERS,
    invalid_link,
    request_meta,
    try_confirmation,
)

bp = Blueprint("preferences", __name__)

NOTHING_STORED = (
    "There is nothing stored for this link. If you asked us to erase your data, "
    "that's done; otherwise the link may belong to an old list."
)


def _preferences_subscriber(token: str, age_of: str | None = None):
    """(subscriber, None) for a good token, else (None, the error page to answer).
    An expired token answers the page that offers a fresh link, naming nobody."""
    try:
        public_id = fresh_links.load("preferences", token, age_of=age_of)
    except fresh_links.Expired as exc:
        return None, exc.answer
    except BadToken:
        return None, invalid_link()
    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        # Same answer whether the data was erased or never existed.
        return None, render_error(404, NOTHING_STORED)
    return sub, None


def _back(token: str, message: str):
    flash(message, "done")
    return redirect(url_for("preferences.preferences", token=token), code=303)


def _preferences_page(token: str, sub, *, errors: dict[str, str] | None = None,
                      form: dict[str, str] | None = None, status: int = 200):
    now = runtime.now()
    html = render_template(
        "preferences.html", token=token, sub=sub, errors=errors or {}, form=form or {},
        paused=lifecycle.is_paused(sub, now),
        paused_until_resumed=lifecycle.paused_until_resumed(sub),
        paused_until_local=_local(sub.paused_until, sub.timezone),
        time_zone_groups=timezones.grouped,
        active=sub.status == lifecycle.CONFIRMED,
    )
    return html, status, PRIVATE_HEADERS


def _local(when, tz_name: str) -> str:
    """A date as the subscriber reads it: in their own time zone."""
    if when is None:
        return ""
    local = when.astimezone(zone(tz_name, runtime.rt().settings.default_timezone))
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({tz_name})"


@bp.get(PATHS["preferences"])
def preferences(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    return _preferences_page(token, sub)


@bp.post("/preferences/<token>/pause")
def preferences_pause(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    now = runtime.now()
    try:
        until = subscribers.pause_end(request.form.get("length", ""), now)
        subscribers.pause(runtime.session(), sub, until, now)
    except FunnelError as exc:
        return _preferences_page(token, sub, errors={exc.field: str(exc)}, status=422)
    if lifecycle.paused_until_resumed(sub):
        return _back(token, "Your emails are paused until you resume them.")
    return _back(token, f"Your emails are paused until {_local(until, sub.timezone)}.")


@bp.post("/preferences/<token>/resume")
def preferences_resume(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    subscribers.resume(runtime.session(), sub, runtime.now())
    runtime.rt().wake.set()
    return _back(token, "Your emails are back on: the next one comes when it's due.")


@bp.post("/preferences/<token>/profile")
def preferences_profile(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    form = {"first_name": request.form.get("first_name", ""),
            "timezone": request.form.get("timezone", "")}
    try:
        changed = subscribers.update_profile(runtime.session(), sub, first_name=form["first_name"],
                                         tz=form["timezone"], now=runtime.now())
    except FunnelError as exc:
        return _preferences_page(token, sub, errors={exc.field: str(exc)}, form=form, status=422)
    return _back(token, "Saved: your next email will use these details." if changed
                 else "Nothing to change: these are the details we already had.")


@bp.post("/preferences/<token>/unsubscribe")
def preferences_unsubscribe(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    subscribers.unsubscribe(runtime.session(), sub, now=runtime.now(), reason="preferences page",
                         meta=request_meta())
    return _back(token, "You're unsubscribed: we won't send you any more emails.")


TOPIC_DONE = {
    ("plan", "off"): "You will get no more plan emails. The newsletter still comes.",
    ("plan", "on"): "The plan is back on: it carries on where you left off.",
    ("newsletter", "off"): "You will get no more newsletters. The plan still comes.",
    ("newsletter", "on"): "The newsletter is back on.",
}


@bp.post("/preferences/<token>/topics")
def preferences_topics(token: str):
    """"Only stop the plan", "only stop the newsletter", or switch one back on."""
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    stop, start = request.form.get("stop", ""), request.form.get("start", "")
    topic, on = (stop, False) if stop else (start, True)
    if topic not in subscribers.TOPICS or (stop and start):
        return render_error(400, "That choice is not one we offer: pick the plan or the "
                                 "newsletter on your preferences page.")
    try:
        done = subscribers.set_topic(runtime.session(), sub, topic, on, now=runtime.now(),
                                     meta=request_meta())
    except FunnelError as exc:
        return _preferences_page(token, sub, errors={exc.field: str(exc)}, status=422)
    if done == "unsubscribed":
        return _back(token, "You're unsubscribed: with the plan and the newsletter both "
                            "stopped, we won't send you any more emails.")
    if on:
        runtime.rt().wake.set()
    return _back(token, TOPIC_DONE.get((topic, done), "Nothing to change."))


@bp.post("/preferences/<token>/resubscribe")
def preferences_resubscribe(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    s = runtime.session()
    # The page is recorded without its token: the token is a key, not a fact.
    meta = subscribers.SignupMeta(ip=request.remote_addr, user_agent=request.user_agent.string,
                               page=request.host_url + "preferences")
    again = subscribers.resubscribe(s, sub, meta=meta, now=runtime.now())
    if again is not None:
        try_confirmation(again, claimed=True)
    if sub.status == lifecycle.PENDING:
        return _back(token, "Nearly there: we've emailed you a link to confirm your address. "
                            "The plan restarts once you click it.")
    return _back(token, "Nothing to change.")


@bp.get("/preferences/<token>/data.json")
def preferences_data(token: str):
    sub, error = _preferences_subscriber(token, age_of="export")
    if error:
        return error
    subjects = load_sequence(runtime.rt().settings.emails_dir).subjects()
    data = privacy.export_data(runtime.session(), sub, now=runtime.now(), subjects=subjects)
    body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return body, 200, {
        **PRIVATE_HEADERS,
        "Content-Type": "application/json; charset=utf-8",
        "Content-Disposition": 'attachment; filename="run-stronger-my-data.json"',
    }


@bp.route("/preferences/<token>/erase", methods=["GET", "POST"])
def preferences_erase(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    if request.method == "GET" or request.form.get("confirm") != "erase":
        # A GET (or a link scanner) only asks; erasing takes the button on this page.
        return render_template("preferences_erase.html", token=token, sub=sub), 200, PRIVATE_HEADERS
    privacy.erase(runtime.session(), sub, runtime.now())
    return render_template("preferences_erased.html"), 200, PRIVATE_HEADERS
