"""API keys: made by the admin, shown once, stored as a hash, revocable. No Flask.

A key reads ``fk_<prefix>_<secret>``. The prefix finds the row and is safe to
show in lists; the secret has 256 bits of entropy, so a plain SHA-256 of it is
as good as a slow password hash and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel.core.inputs import pick_names
from funnel.models import API_SCOPES, ApiKey

KEY_RE = re.compile(r"^fk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$")


class ApiKeyError(ValueError):
    """The key cannot be made or changed; the message says why."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(raw: list[str] | tuple[str, ...]) -> list[str]:
    try:
        return pick_names(raw, API_SCOPES, noun="scope")
    except ValueError as exc:
        raise ApiKeyError(str(exc)) from None


def create_key(session: Session, name: str, scopes: list[str], *, now: datetime
               ) -> tuple[ApiKey, str]:
    """Make a key; returns the row and the full key, which is never stored."""
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise ApiKeyError("the name must be 1-80 letters, digits, spaces, dots, dashes or "
                        "underscores, starting with a letter or digit")
    chosen = parse_scopes(scopes)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"there is already a key named {name!r}")
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(12))
    secret = secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=prefix, key_hash=_hash(secret), scopes=" ".join(chosen),
                 created_at=now)
    session.add(key)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ApiKeyError(f"there is already a key named {name!r}") from exc
    return key, f"fk_{prefix}_{secret}"


def verify(session: Session, presented: str) -> ApiKey | None:
    """The live key ``presented`` is, or None. Constant-time on the secret."""
    m = KEY_RE.match(presented or "")
    if not m:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == m.group(1)))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, _hash(m.group(2))):
        return None
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, name_or_prefix: str, *, now: datetime) -> ApiKey:
    key = session.scalar(select(ApiKey).where(
        (ApiKey.name == name_or_prefix) | (ApiKey.prefix == name_or_prefix)))
    if key is None:
        raise ApiKeyError(f"no API key named {name_or_prefix!r}")
    if key.revoked_at is None:
        key.revoked_at = now
        session.commit()
    return key
