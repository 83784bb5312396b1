"""Helpers for the security tests: personal links made the way emails make them,
so the tests do not depend on when the confirmation email is sent."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from funnel.models import Subscriber


def subscriber(db, email: str) -> Subscriber | None:
    db.rollback()
    db.expunge_all()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def personal_path(app, db, email: str, purpose: str) -> str:
    """The path of EMAIL's confirm / unsubscribe / preferences link."""
    sub = subscriber(db, email)
    assert sub is not None, f"no subscriber {email}"
    links = app.extensions["funnel"].composer.links
    return urlsplit(getattr(links, purpose)(sub.public_id)).path
