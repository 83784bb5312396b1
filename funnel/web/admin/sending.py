"""The admin's "Sending" page: the deliverability check-up of MAIL_FROM's domain,
which way mail goes (the SMTP fallback), and the brakes. Behind the admin login."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from funnel import runtime
from funnel.control import brakes, mail_health
from funnel.deliverability import checkup as rules
from funnel.deliverability.checkup import from_domain
from funnel.deliverability.resolver import checkup
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("sending", __name__, url_prefix="/admin/sending")
admin_only(bp)


@bp.get("/")
def page():
    # DNS questions only, answered within DNS_TIMEOUT each; nothing is sent.
    lines = checkup(current_app.config)
    health = mail_health.read(runtime.session(), bool(runtime.rt().settings.mail_fallback))
    verdict = rules.worst(lines)
    settings = runtime.rt().settings
    s = runtime.session()
    waiting = brakes.waiting_newsletters(s)
    plans = {slug: brakes.warmup_plan(s, settings, n, runtime.now()) for slug, n in waiting}
    return render_template("admin/sending.html", lines=lines, verdict=verdict,
                           domain=from_domain(current_app.config["MAIL_FROM"]),
                           mail_health=health, warmup_start=settings.warmup_start,
                           plans=plans)


@bp.post("/resume")
def resume():
    s = runtime.session()
    if not brakes.load(s).paused:
        flash("Sending was not paused.")
    else:
        admin = current_admin()
        brakes.resume(s, runtime.now(), admin.email if admin else "an admin")
        flash("Resumed: newsletters and sequences go out again from the worker's next pass.")
    return redirect(url_for("sending.page"))
