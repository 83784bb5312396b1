"""Admin sessions that can be ended.

The session lives in Flask's signed cookie, so on its own a copied cookie would
work until it expires. Each cookie therefore carries the account's
``session_version``; logging out or changing the password raises the version,
and every cookie made under the old one stops working at once, wherever it is.
A session also ends a fixed time after the login, however busy it is, and after
a stretch of idleness.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app, session
from sqlalchemy.orm import Session

from funnel.models import AdminUser

IDLE_TIMEOUT = timedelta(hours=8)
MAX_AGE_HOURS = 12


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    idle = config.get("ADMIN_SESSION_TIMEOUT", IDLE_TIMEOUT)
    max_age = timedelta(hours=float(config.get("ADMIN_SESSION_MAX_HOURS", MAX_AGE_HOURS)))
    return idle, max_age


def start(admin: AdminUser, now: datetime) -> None:
    session.clear()
    session["admin_id"] = admin.id
    session["admin_version"] = admin.session_version
    session["admin_login"] = now.isoformat()
    session["admin_seen"] = now.isoformat()


def current(db: Session, now: datetime) -> AdminUser | None:
    """The logged-in admin, or None (and the cookie cleared) when the session is over."""
    admin_id = session.get("admin_id")
    if admin_id is None:
        return None
    idle, max_age = _limits()
    try:
        login = datetime.fromisoformat(session["admin_login"])
        seen = datetime.fromisoformat(session["admin_seen"])
        version = int(session["admin_version"])
    except (KeyError, TypeError, ValueError):
        session.clear()  # a cookie from before versions: log in again
        return None
    admin = db.get(AdminUser, admin_id)
    if (admin is None or admin.session_version != version
            or now - login > max_age or now - seen > idle):
        session.clear()
        return None
    session["admin_seen"] = now.isoformat()
    return admin


def end_everywhere(admin: AdminUser) -> None:
    """Every cookie made for this account stops working (the caller commits)."""
    admin.session_version = (admin.session_version or 0) + 1
