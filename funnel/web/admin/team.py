"""The Team page: an owner lists, adds, re-roles and removes admin accounts."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from funnel import runtime
from funnel.accounts import team
from funnel.web.admin.auth import admin_only, current_admin
from funnel.web.admin.roles import ROLE_WORDS

bp = Blueprint("team", __name__, url_prefix="/admin/team")
admin_only(bp)


@bp.get("/")
def index():
    return render_template("admin/team.html", accounts=team.accounts(runtime.session()),
                           roles=team.ROLES, words=ROLE_WORDS, me=current_admin())


def _back():
    return redirect(url_for(".index"), code=303)


@bp.post("/")
def add():
    s = runtime.session()
    try:
        admin = team.add(s, request.form.get("email", ""), request.form.get("password", ""),
                         request.form.get("role", ""), runtime.now())
    except team.TeamError as exc:
        s.rollback()
        flash(f"Not added: {exc}.")
        return _back()
    flash(f"Added {admin.email} as {admin.role}. Give them the password by a safe way; "
          "they sign in at /admin/login.")
    return _back()


@bp.post("/<int:admin_id>/role")
def change(admin_id: int):
    s = runtime.session()
    try:
        admin = team.change_role(s, admin_id, request.form.get("role", ""))
    except team.TeamError as exc:
        s.rollback()
        flash(f"Not changed: {exc}.")
        return _back()
    flash(f"{admin.email} is now {admin.role}.")
    return _back()


@bp.post("/<int:admin_id>/remove")
def remove(admin_id: int):
    s = runtime.session()
    try:
        email = team.remove(s, admin_id)
    except team.TeamError as exc:
        s.rollback()
        flash(f"Not removed: {exc}.")
        return _back()
    flash(f"Removed {email}: that account can no longer sign in.")
    return _back()
