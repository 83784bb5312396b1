"""Pages reached from links in emails: confirm, unsubscribe, preferences, view."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy import select

from funnel import privacy, runtime, services
from funnel.core import lifecycle
from funnel.core.sequence import load_sequence
from funnel.links import PATHS
from funnel.models import Delivery
from funnel.web.errors import render_error
from funnel.web.extensions import csrf

bp = Blueprint("links", __name__)


def _meta() -> services.SignupMeta:
    return services.SignupMeta(ip=request.remote_addr, user_agent=request.user_agent.string)


def _signed(token: str, purpose: str) -> bool:
    try:
        runtime.rt().composer.tokens.load(purpose, token)
    except services.BadToken:
        return False
    return True


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
        return render_template("welcome.html", already=result.outcome == "already",
                               sub=result.subscriber)
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
        _try_confirmation(sub)
    return render_template("check_inbox.html")


def _try_confirmation(sub, claimed: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Send a confirmation email; the state change stands even if mail is down.
    ``claimed``: services.subscribe already decided this request sends it."""
    r = runtime.rt()
    send = services.send_confirmation if claimed else services.request_confirmation
    try:
        send(runtime.session(), r.composer, r.transport, sub, runtime.now())
    except Exception:
        current_app.logger.exception("confirmation email failed for subscriber %s", sub.id)


@bp.route(PATHS["unsubscribe"], methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mail providers POST here with no session and no token
def unsubscribe(token: str):
    s = runtime.session()
    sub = services.subscriber_from_token(s, runtime.rt().composer, "unsubscribe", token)
    if sub is None:
        if request.method == "POST" and _signed(token, "unsubscribe"):
            # Erased: there is nothing left to mail, so the one-click POST succeeds.
            return render_template("unsubscribe.html", token=token, done=True), 200
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
    step = load_sequence(r.settings.emails_dir).get(d.step_slug)
    if step is None:
        abort(404)
    rendered = r.composer.render(step.source, sub, d.public_id)
    resp = Markup(rendered.html)
    return resp, 200, {"X-Robots-Tag": "noindex"}


# -- preferences ---------------------------------------------------------------
# Reached from every email's footer, with no login: the signed token is the key.
# GETs only show; every change is a CSRF-protected POST that redirects back to
# the page, which confirms what changed.

NOTHING_STORED = (
    "There is nothing stored for this link. If you asked us to erase your data, "
    "that's done; otherwise the link may belong to an old list."
)
PRIVATE_HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _preferences_subscriber(token: str):  # type: ignore[no-untyped-def]
    """(subscriber, None) for a good token, else (None, the error page to answer)."""
    r = runtime.rt()
    try:
        public_id = r.composer.tokens.load("preferences", token)
    except services.BadToken:
        return None, _invalid_link()
    sub = services.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        # Same answer whether the data was erased or never existed.
        return None, render_error(404, NOTHING_STORED)
    return sub, None


def _back(token: str, message: str):  # type: ignore[no-untyped-def]
    flash(message, "done")
    return redirect(url_for("links.preferences", token=token), code=303)


def _preferences_page(token: str, sub, *, errors: dict[str, str] | None = None,
                      form: dict[str, str] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    now = runtime.now()
    html = render_template(
        "preferences.html", token=token, sub=sub, errors=errors or {}, form=form or {},
        paused=privacy.is_paused(sub, now),
        paused_until_resumed=privacy.paused_until_resumed(sub),
        paused_until_local=_local(sub.paused_until, sub.timezone),
        time_zones=privacy.time_zones(),
        active=sub.status == lifecycle.CONFIRMED,
    )
    return html, status, PRIVATE_HEADERS


def _local(when, tz_name: str) -> str:  # type: ignore[no-untyped-def]
    """A date as the subscriber reads it: in their own time zone."""
    if when is None:
        return ""
    from funnel.core.schedule import zone

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
        until = privacy.pause_end(request.form.get("length", ""), now)
        privacy.pause(runtime.session(), sub, until, now)
    except services.FunnelError as exc:
        return _preferences_page(token, sub, errors={exc.field: str(exc)}, status=422)
    if privacy.paused_until_resumed(sub):
        return _back(token, "Your emails are paused until you resume them.")
    return _back(token, f"Your emails are paused until {_local(until, sub.timezone)}.")


@bp.post("/preferences/<token>/resume")
def preferences_resume(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    privacy.resume(runtime.session(), sub, runtime.now())
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
        changed = privacy.update_profile(runtime.session(), sub, first_name=form["first_name"],
                                         tz=form["timezone"], now=runtime.now())
    except services.FunnelError as exc:
        return _preferences_page(token, sub, errors={exc.field: str(exc)}, form=form, status=422)
    return _back(token, "Saved: your next email will use these details." if changed
                 else "Nothing to change: these are the details we already had.")


@bp.post("/preferences/<token>/unsubscribe")
def preferences_unsubscribe(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    services.unsubscribe(runtime.session(), sub, now=runtime.now(), reason="preferences page",
                         meta=_meta())
    return _back(token, "You're unsubscribed: we won't send you any more emails.")


@bp.post("/preferences/<token>/resubscribe")
def preferences_resubscribe(token: str):
    sub, error = _preferences_subscriber(token)
    if error:
        return error
    s = runtime.session()
    # The page is recorded without its token: the token is a key, not a fact.
    meta = services.SignupMeta(ip=request.remote_addr, user_agent=request.user_agent.string,
                               page=request.host_url + "preferences")
    again = privacy.resubscribe(s, sub, meta=meta, now=runtime.now())
    if again is not None:
        _try_confirmation(again, claimed=True)
    if sub.status == lifecycle.PENDING:
        return _back(token, "Nearly there: we've emailed you a link to confirm your address. "
                            "The plan restarts once you click it.")
    return _back(token, "Nothing to change.")


@bp.get("/preferences/<token>/data.json")
def preferences_data(token: str):
    sub, error = _preferences_subscriber(token)
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
