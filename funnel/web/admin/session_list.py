"""Where this account is signed in: each session with its browser, address and
last use, a button to end any one, and one to sign out everywhere else."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for

from funnel import runtime
from funnel.web.admin import sessions
from funnel.web.admin.auth import admin_only, current_admin

bp = Blueprint("admin_sessions", __name__, url_prefix="/admin")
admin_only(bp)


@bp.get("/sessions")
def index():
    admin = current_admin()
    assert admin is not None  # admin_only
    rows = sessions.live(runtime.session(), admin, runtime.now())
    return render_template("admin/sessions.html", rows=rows, mine=sessions.current_id())


@bp.post("/sessions/<public_id>/end")
def end(public_id: str):
    admin = current_admin()
    assert admin is not None
    s = runtime.session()
    if sessions.end_one(s, admin, public_id, runtime.now()):
        s.commit()
        flash("That session is signed out.")
    return redirect(url_for("admin_sessions.index"), code=303)


@bp.post("/sessions/end-others")
def end_others():
    """Sign out everywhere: every other browser at once; this one signs in afresh."""
    admin = current_admin()
    assert admin is not None
    now = runtime.now()
    sessions.end_everywhere(admin, now)
    sessions.start(admin, now)
    runtime.session().commit()
    flash("Signed out everywhere else.")
    return redirect(url_for("admin_sessions.index"), code=303)
