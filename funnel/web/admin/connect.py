"""Admin pages for connecting to other tools: the embeddable form and webhooks.

Behind the admin login like every admin page; every POST carries the CSRF token.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from funnel import runtime
from funnel.accounts.passwords import check_password
from funnel.hooks import manage
from funnel.hooks.events import EVENT_TYPES
from funnel.hooks.secret_box import box_from_config
from funnel.http.extensions import limiter
from funnel.web.admin.auth import admin_only, current_admin
from funnel.web.public import embed

bp = Blueprint("connect", __name__, url_prefix="/admin")
admin_only(bp)


@bp.get("/embed")
def embed_page():
    base = current_app.config["FUNNEL_BASE_URL"]
    listed = [o for o in (embed.normalise_origin(x) for x in
                          current_app.config.get("EMBED_ORIGINS") or []) if o]
    return render_template("admin/embed.html", form_snippet=embed.snippet(base),
                           iframe_snippet=embed.iframe_snippet(base), origins=listed)


def _page(status: int = 200, **extra):
    s = runtime.session()
    return render_template(
        "admin/webhooks.html", endpoints=manage.endpoints(s), deliveries=manage.recent(s),
        event_types=EVENT_TYPES, **extra), status


@bp.get("/webhooks")
def webhooks():
    return _page()


@bp.post("/webhooks/<int:endpoint_id>/reveal")
@limiter.limit("10 per minute")
def webhooks_reveal(endpoint_id: int):
    """A stored secret is shown only to someone who types their password again: an
    unattended signed-in browser does not give it away."""
    admin = current_admin()
    if admin is None or not check_password(admin.password_hash,
                                           request.form.get("password") or ""):
        return _page(403, reveal_error=endpoint_id)
    try:
        secret = manage.reveal_secret(runtime.session(), endpoint_id,
                                      box_from_config(current_app.config))
    except manage.EndpointError:
        abort(404)
    return _page(shown={"id": endpoint_id, "secret": secret})


@bp.post("/webhooks")
def webhooks_add():
    s = runtime.session()
    try:
        endpoint = manage.add_endpoint(
            s, request.form.get("url", ""), request.form.getlist("events"), now=runtime.now(),
            allow_private=current_app.config["WEBHOOKS_ALLOW_PRIVATE"],
            box=box_from_config(current_app.config))
    except manage.EndpointError as exc:
        s.rollback()
        return render_template(
            "admin/webhooks.html", endpoints=manage.endpoints(s), deliveries=manage.recent(s),
            event_types=EVENT_TYPES, error=str(exc), url=request.form.get("url", "")[:2000],
            chosen=request.form.getlist("events")), 422
    # Shown in this answer only (not after a redirect, not in a cookie): once.
    return _page(201, shown={"id": endpoint.id, "secret": endpoint.plain_secret},
                 added=endpoint.url)


@bp.post("/webhooks/<int:endpoint_id>")
def webhooks_change(endpoint_id: int):
    s = runtime.session()
    action = request.form.get("action")
    try:
        if action == "remove":
            manage.remove_endpoint(s, endpoint_id)
            flash("Endpoint removed; nothing more will be sent to it.")
        elif action in ("enable", "disable"):
            manage.set_enabled(s, endpoint_id, action == "enable", now=runtime.now())
            flash(f"Endpoint {action}d.")
        else:
            abort(400)
    except manage.EndpointError:
        abort(404)
    return redirect(url_for("connect.webhooks"), code=303)


@bp.post("/webhooks/deliveries/<int:message_id>/again")
def webhooks_again(message_id: int):
    s = runtime.session()
    try:
        manage.send_again(s, message_id, now=runtime.now())
    except manage.EndpointError as exc:
        flash(str(exc))
        return redirect(url_for("connect.webhooks"), code=303)
    runtime.rt().wake.set()
    flash("Queued to be sent again (same id, so a receiver that already has it can skip it).")
    return redirect(url_for("connect.webhooks"), code=303)
