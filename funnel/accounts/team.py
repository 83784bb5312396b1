"""A small team: admin accounts with a role each (``core.states.AdminRole``).

Used by the admin's team page and by ``flask --app funnel admin create``. The one
rule beyond checking input: the list always keeps an owner, so nobody can lock
the coach out of the accounts, exports and settings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.accounts.passwords import MIN_LENGTH, hash_password
from funnel.core.inputs import FunnelError, normalise_email
from funnel.core.states import ROLE_RANK, AdminRole
from funnel.models import AdminUser

ROLES = tuple(r.value for r in AdminRole)


class TeamError(ValueError):
    """Refused; the message says why. Nothing was changed."""


def parse_role(value: str | None) -> str:
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise TeamError(f"the role must be one of {', '.join(ROLES)}, not '{value}'")
    return role


def may(role: str | None, needed: str) -> bool:
    """Whether an account with ``role`` may use a page that needs ``needed``."""
    try:
        return ROLE_RANK[AdminRole(role or AdminRole.VIEWER)] >= ROLE_RANK[AdminRole(needed)]
    except ValueError:
        return False


def accounts(session: Session) -> list[AdminUser]:
    return list(session.scalars(select(AdminUser).order_by(AdminUser.email)))


def _owners(session: Session) -> int:
    q = select(AdminUser.id).where(AdminUser.role == AdminRole.OWNER)
    if session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()  # two owners demoting each other at once: one waits
    return len(list(session.scalars(q)))


def check_role_change(session: Session, admin: AdminUser, new_role: str | None) -> None:
    """Refuse to demote (``new_role``) or remove (None) the last owner."""
    if admin.role == AdminRole.OWNER and new_role != AdminRole.OWNER and _owners(session) <= 1:
        what = "removed" if new_role is None else "made " + new_role
        raise TeamError(f"{admin.email} is the last owner and cannot be {what}: make "
                        "someone else an owner first")


def add(session: Session, email: str, password: str, role: str, now: datetime) -> AdminUser:
    try:
        address = normalise_email(email)
    except FunnelError as exc:
        raise TeamError(str(exc)) from exc
    role = parse_role(role)
    if len(password) < MIN_LENGTH:
        raise TeamError(f"the password must be at least {MIN_LENGTH} characters")
    if session.scalar(select(func.count()).where(AdminUser.email == address)):
        raise TeamError(f"{address} has an account already: change its role instead")
    admin = AdminUser(email=address, password_hash=hash_password(password), created_at=now,
                      role=role)
    session.add(admin)
    session.commit()
    return admin


def change_role(session: Session, admin_id: int, role: str) -> AdminUser:
    role = parse_role(role)
    admin = session.get(AdminUser, admin_id)
    if admin is None:
        raise TeamError("that account no longer exists")
    check_role_change(session, admin, role)
    admin.role = role
    # Pages already open under the old role stop working at once.
    admin.session_version = (admin.session_version or 0) + 1
    session.commit()
    return admin


def remove(session: Session, admin_id: int) -> str:
    admin = session.get(AdminUser, admin_id)
    if admin is None:
        raise TeamError("that account no longer exists")
    check_role_change(session, admin, None)
    email = admin.email
    session.delete(admin)
    session.commit()
    return email
