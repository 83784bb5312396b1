"""Two-factor sign-in pages: the code step after the password, and enrolment
(QR code, first code, recovery codes shown once). The rules are in
``funnel.accounts.two_factor``; ``ADMIN_REQUIRE_2FA=1`` makes every account enrol before
it sees any other admin page (``funnel.web.admin.auth``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from funnel import runtime
from funnel.accounts import two_factor as tf
from funnel.models import AdminUser
from funnel.web.admin import login_limits, sessions
from funnel.web.admin.auth import current_admin, safe_next

bp = Blueprint("two_factor", __name__, url_prefix="/admin")
PENDING_FOR = timedelta(minutes=5)  # between the password and the code
NO_STORE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _keys():
    cfg = current_app.config
    return tf.box((cfg.get("SECRET_KEY") or "", *cfg.get("SECRET_KEY_FALLBACKS", [])))


def _pending() -> AdminUser | None:
    try:
        at = datetime.fromisoformat(session["tf_at"])
        admin = runtime.session().get(AdminUser, int(session["tf_admin"]))
    except (KeyError, TypeError, ValueError):
        return None
    if (admin is None or admin.session_version != session.get("tf_version")
            or runtime.now() - at > PENDING_FOR):
        return None
    return admin


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    admin = _pending()
    if admin is None:
        session.clear()
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("admin/two_factor_code.html", error=None), 200, NO_STORE
    wait = login_limits.wait_seconds(admin.email)
    if wait:
        error = f"Too many wrong codes. Wait {wait} seconds and try again."
        return render_template("admin/two_factor_code.html", error=error), 429, NO_STORE
    typed = request.form.get("code") or ""
    s = runtime.session()
    if tf.check_code(admin, _keys(), typed, runtime.now()) or tf.use_recovery_code(admin, typed):
        login_limits.succeeded(admin.email)
        target = session.get("tf_next")
        sessions.start(admin, runtime.now())
        admin.last_login_at = runtime.now()
        s.commit()
        return redirect(safe_next(target))
    s.commit()  # a used step stays used
    login_limits.failed(admin.email)
    error = "That code didn't work. Use the current code from your app, or a recovery code."
    return render_template("admin/two_factor_code.html", error=error), 401, NO_STORE


@bp.route("/two-factor", methods=["GET", "POST"])
def manage():
    admin = current_admin()
    if admin is None:
        return redirect(url_for("auth.login", next=request.path))
    s = runtime.session()
    keys = _keys()
    if tf.enabled(admin):
        return render_template("admin/two_factor.html", admin=admin, on=True,
                               left=tf.recovery_left(admin)), 200, NO_STORE
    if request.method == "POST" and admin.totp_secret:
        codes = tf.finish_enrolment(admin, keys, request.form.get("code") or "", runtime.now())
        if codes is not None:
            # Every other session of this account ends; this one carries on.
            sessions.end_everywhere(admin)
            sessions.start(admin, runtime.now())
            s.commit()
            return render_template("admin/two_factor.html", admin=admin, on=True,
                                   codes=codes, left=len(codes)), 200, NO_STORE
        s.commit()
        secret = tf.pending_secret(admin, keys) or ""
        return render_template("admin/two_factor.html", admin=admin, on=False, secret=secret,
                               qr=tf.qr_data_uri(admin, secret),
                               error="That code didn't match. Check the time on your phone "
                                     "and try the next code."), 422, NO_STORE
    secret = tf.pending_secret(admin, keys) or tf.start_enrolment(admin, keys)
    s.commit()
    required = bool(current_app.config.get("ADMIN_REQUIRE_2FA"))
    return render_template("admin/two_factor.html", admin=admin, on=False, secret=secret,
                           qr=tf.qr_data_uri(admin, secret), required=required), 200, NO_STORE
