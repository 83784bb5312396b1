"""Admin login: password hashes (scrypt), a session that times out, rate-limited attempts."""

from __future__ import annotations

import functools
from datetime import timedelta

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from funnel import runtime
from funnel.accounts import two_factor
from funnel.accounts.passwords import check_password
from funnel.http.extensions import limiter
from funnel.models import AdminUser
from funnel.web.admin import login_limits, sessions

bp = Blueprint("auth", __name__, url_prefix="/admin")

SESSION_TIMEOUT = timedelta(hours=8)


def current_admin() -> AdminUser | None:
    """The signed-in admin, judged once per request for the cookie it carries: a page
    asks several times (the role, the login, the menu's links), each was two queries."""
    cookie = (session.get("admin_sid"), session.get("admin_id"), session.get("admin_version"))
    judged = g.get("current_admin")
    if judged is not None and judged[0] == cookie:
        return judged[1]
    admin = sessions.current(runtime.session(), runtime.now())
    # Read again: a session that is over clears the cookie, so the next ask is free.
    g.current_admin = ((session.get("admin_sid"), session.get("admin_id"),
                        session.get("admin_version")), admin)
    return admin


def login_required(view):
    """Every admin page and action goes through this."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        admin = current_admin()
        if admin is None:
            return redirect(url_for("auth.login", next=request.full_path))
        if must_enrol(admin):
            return redirect(url_for("two_factor.manage"))
        return view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return url_for("admin.dashboard") if "admin.dashboard" in current_app.view_functions else "/admin/"


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config.get("RATELIMIT_LOGIN", "10 per minute"),
               methods=["POST"])
def login():
    error = None
    typed = ""
    if request.method == "POST":
        typed = (request.form.get("email") or "").strip()[:254]
        email = (request.form.get("email") or "").strip().lower()
        password = request.form.get("password") or ""
        wait = login_limits.wait_seconds(email)
        if wait:
            # The password is not checked while waiting: the delay is not a free guess.
            error = (f"Too many failed sign-ins to this account from your connection. "
                     f"Wait {wait} seconds and try again.")
            return render_template("admin/login.html", error=error), 429
        s = runtime.session()
        admin = s.scalar(select(AdminUser).where(AdminUser.email == email))
        ok = check_password(admin.password_hash if admin else None, password)
        if admin is not None and ok:
            if two_factor.enabled(admin):
                # Failures are forgiven only after the code: the password alone must
                # not reset the count a code guesser runs up.
                sessions.await_code(admin, runtime.now(), safe_next(request.args.get("next")))
                return redirect(url_for("two_factor.code"))
            login_limits.succeeded(email)
            sessions.start(admin, runtime.now())
            admin.last_login_at = runtime.now()
            s.commit()
            return redirect(safe_next(request.args.get("next")))
        login_limits.failed(email)
        error = "That email and password don't match an account."
    # The address stays typed after a wrong password: only the password is asked again.
    return render_template("admin/login.html", error=error, email=typed), (401 if error else 200)


@bp.post("/logout")
def logout():
    admin = current_admin()
    if admin is not None:
        # Every copy of the cookie ends, not just this browser's.
        sessions.end_everywhere(admin)
        runtime.session().commit()
    session.clear()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


def must_enrol(admin: AdminUser) -> bool:
    """ADMIN_REQUIRE_2FA=1: an account without two-factor sees only the page that
    sets it up."""
    return bool(current_app.config.get("ADMIN_REQUIRE_2FA")) and not two_factor.enabled(admin)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def admin_only(bp: Blueprint) -> None:
    """Every page of ``bp`` needs the login, and no cache or search engine keeps it."""

    @bp.before_request
    def _require_login():
        admin = current_admin()
        if admin is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if must_enrol(admin):
            return redirect(url_for("two_factor.manage"))
        return None

    @bp.after_request
    def _no_store(resp: Response) -> Response:
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Robots-Tag"] = "noindex"
        return resp
