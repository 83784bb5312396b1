"""The marketer's actions on one subscriber and on failed sends.

Each action calls the same use case as the subscriber's own pages (the same
checks, the same caps), then redirects back with a notice. Behind the admin
login like every admin page; every POST carries a CSRF token (app-wide).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for

from funnel import runtime
from funnel.control import failures
from funnel.core.inputs import FunnelError
from funnel.core.states import SubscriberStatus
from funnel.subscribers import actions as subscribers
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("admin_subscriber", __name__, url_prefix="/admin")
admin_only(bp)


def _sub(public_id: str):
    from flask import abort

    sub = subscribers.subscriber_from_public_id(runtime.session(), public_id)
    if sub is None:
        abort(404)
    return sub


def _back(public_id: str):
    return redirect(url_for("admin.subscriber", public_id=public_id), code=303)


def _admin_email() -> str:
    admin = current_admin()
    assert admin is not None
    return admin.email


@bp.post("/subscribers/<public_id>/resend-confirmation")
def resend_confirmation(public_id: str):
    sub = _sub(public_id)
    if sub.status != SubscriberStatus.PENDING:
        flash("Only someone who has not confirmed yet can be sent the confirmation email.")
        return _back(public_id)
    # The public form's use case, with its caps; the worker sends (never this request).
    queued = subscribers.request_confirmation(runtime.session(), sub, runtime.now())
    if queued:
        runtime.rt().wake.set()
    flash("Confirmation email queued: the worker sends it within moments." if queued else
          "A confirmation email was sent a few minutes ago; to protect their inbox, "
          "another can go out a little later (the same limits as the public form).")
    return _back(public_id)


@bp.post("/subscribers/<public_id>/confirm")
def confirm_by_hand(public_id: str):
    sub = _sub(public_id)
    try:
        subscribers.confirm_by_hand(runtime.session(), sub, admin=_admin_email(),
                                    reason=request.form.get("reason", ""), now=runtime.now())
    except FunnelError as exc:
        runtime.session().rollback()
        flash(str(exc))
        return _back(public_id)
    runtime.rt().wake.set()
    flash("Marked as confirmed; your reason is in the consent history. The plan starts on "
          "the worker's next pass.")
    return _back(public_id)


@bp.post("/subscribers/<public_id>/pause")
def pause(public_id: str):
    sub = _sub(public_id)
    now = runtime.now()
    try:
        until = subscribers.pause_end(request.form.get("length", ""), now)
        subscribers.pause(runtime.session(), sub, until, now)
    except FunnelError as exc:
        runtime.session().rollback()
        flash(str(exc))
        return _back(public_id)
    flash("Paused. Nothing is skipped: the plan carries on where it stopped.")
    return _back(public_id)


@bp.post("/subscribers/<public_id>/resume")
def resume(public_id: str):
    sub = _sub(public_id)
    subscribers.resume(runtime.session(), sub, runtime.now())
    runtime.rt().wake.set()
    flash("Resumed: the next email goes out in their next sending window.")
    return _back(public_id)


@bp.post("/subscribers/<public_id>/profile")
def edit_profile(public_id: str):
    sub = _sub(public_id)
    try:
        changed = subscribers.update_profile(
            runtime.session(), sub, first_name=request.form.get("first_name", ""),
            tz=request.form.get("timezone", ""), now=runtime.now())
    except FunnelError as exc:
        runtime.session().rollback()
        flash(str(exc))
        return _back(public_id)
    flash("Saved." if changed else "Nothing to change.")
    return _back(public_id)


@bp.post("/subscribers/<public_id>/retry")
def retry_subscriber(public_id: str):
    sub = _sub(public_id)
    n = failures.retry(runtime.session(), now=runtime.now(), subscriber_id=sub.id)
    runtime.rt().wake.set()
    flash(f"{n} failed email{'' if n == 1 else 's'} queued again; the worker sends "
          f"{'it' if n == 1 else 'them'} on its next pass." if n else "Nothing to retry.")
    return _back(public_id)


@bp.post("/failures/<slug>/retry")
def retry_step(slug: str):
    from funnel.web.admin.dashboard import broken_steps, sequence_subjects

    back = redirect(url_for("admin.dashboard") + "#failures-title", code=303)
    if slug in broken_steps():
        flash("That email still has errors: fix it (see the Emails page), then retry.")
        return back
    n = failures.retry(runtime.session(), now=runtime.now(), step_slug=slug)
    runtime.rt().wake.set()
    subject = sequence_subjects().get(slug, slug)
    flash(f"{n} failed sends of “{subject}” queued again; the worker sends them on its next "
          "pass." if n else "Nothing to retry for that email.")
    return back
