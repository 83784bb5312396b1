"""Admin sessions that can be ended.

The session lives in Flask's signed cookie, so on its own a copied cookie would
work until it expires. Each cookie therefore carries the account's
``session_version``; logging out or changing the password raises the version,
and every cookie made under the old one stops working at once, wherever it is.
A session also ends a fixed time after the login, however busy it is, and after
a stretch of idleness. Each session is also a row (``admin_session``, named by the
cookie), so the account sees where it is signed in and can end any one of them
(``/admin/sessions``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from flask import current_app, request, session
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from funnel import runtime
from funnel.models import AdminSession, AdminUser

IDLE_TIMEOUT = timedelta(hours=8)
MAX_AGE_HOURS = 12
SEEN_EVERY = timedelta(minutes=1)  # how often a session's "last seen" is written


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    idle = config.get("ADMIN_SESSION_TIMEOUT", IDLE_TIMEOUT)
    max_age = timedelta(hours=float(config.get("ADMIN_SESSION_MAX_HOURS", MAX_AGE_HOURS)))
    return idle, max_age


def start(admin: AdminUser, now: datetime) -> None:
    """Sign this browser in (the caller commits: the session's row is added)."""
    session.clear()
    sid = secrets.token_hex(16)
    runtime.session().add(AdminSession(
        admin_id=admin.id, public_id=sid, created_at=now, last_seen_at=now,
        ip=(request.remote_addr or "")[:64] or None,
        user_agent=(request.user_agent.string or "")[:300] or None))
    session["admin_sid"] = sid
    session["admin_id"] = admin.id
    session["admin_version"] = admin.session_version
    session["admin_login"] = now.isoformat()
    session["admin_seen"] = now.isoformat()


def await_code(admin: AdminUser, now: datetime, next_url: str) -> None:
    """The password was right and the account has two-factor on: remember who is
    half-way in, for the code step (funnel/web/admin/two_factor.py)."""
    session.clear()
    session["tf_admin"] = admin.id
    session["tf_version"] = admin.session_version
    session["tf_at"] = now.isoformat()
    session["tf_next"] = next_url


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
    row = db.scalar(select(AdminSession).where(AdminSession.public_id == session.get("admin_sid")))
    if (admin is None or admin.session_version != version or row is None
            or row.admin_id != admin.id or row.ended_at is not None
            or now - login > max_age or now - seen > idle):
        session.clear()
        return None
    session["admin_seen"] = now.isoformat()
    if now - row.last_seen_at >= SEEN_EVERY:
        row.last_seen_at = now
        db.commit()
    return admin


def current_id() -> str | None:
    return session.get("admin_sid")


def live(db: Session, admin: AdminUser, now: datetime) -> list[AdminSession]:
    """The account's sessions that still work, newest first."""
    idle, max_age = _limits()
    rows = db.scalars(select(AdminSession).where(
        AdminSession.admin_id == admin.id, AdminSession.ended_at.is_(None),
        AdminSession.created_at > now - max_age, AdminSession.last_seen_at > now - idle,
    ).order_by(AdminSession.last_seen_at.desc()))
    return list(rows)


def end_one(db: Session, admin: AdminUser, public_id: str, now: datetime) -> bool:
    """End one of the account's sessions; False when it is not one of them."""
    done = db.execute(update(AdminSession).where(
        AdminSession.admin_id == admin.id, AdminSession.public_id == public_id,
        AdminSession.ended_at.is_(None)).values(ended_at=now))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def end_everywhere(admin: AdminUser, now: datetime | None = None) -> None:
    """Every cookie made for this account stops working (the caller commits)."""
    admin.session_version = (admin.session_version or 0) + 1
    runtime.session().execute(update(AdminSession).where(
        AdminSession.admin_id == admin.id, AdminSession.ended_at.is_(None)).values(
        ended_at=now or runtime.now()))
