"""A signed-in admin for the benches: the cookie and the ``admin_session`` row a
login writes (funnel/web/admin/sessions.py), without going through the form."""

from __future__ import annotations

import secrets

from funnel.models import AdminSession, AdminUser


def signed_in(rt, admin: AdminUser) -> dict[str, object]:
    """Adds the session row for ``admin`` (committed) and returns the cookie's contents."""
    now = rt.clock()
    sid = secrets.token_hex(16)
    with rt.sessions() as s:
        s.add(AdminSession(admin_id=admin.id, public_id=sid, created_at=now, last_seen_at=now))
        s.commit()
    return {"admin_sid": sid, "admin_id": admin.id, "admin_version": admin.session_version,
            "admin_login": now.isoformat(), "admin_seen": now.isoformat()}
