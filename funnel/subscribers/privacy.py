"""What the law gives a subscriber: their data exported, erased, and never mailed again.

Erasure keeps nothing but a salted hash of the address in the suppression list,
so the address cannot be mailed again by a later import or sign-up
(``subscribers.subscribe`` checks it). No Flask in here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from funnel.core import lifecycle
from funnel.core.inputs import normalise_email
from funnel.models import (
    AppState,
    ConsentRecord,
    DeliveryEvent,
    SignupIntake,
    Subscriber,
    Suppression,
)
from funnel.subscribers import queries

EXPORT_FORMAT = "run-stronger-subscriber-data/1"


# The salt of each database, once read: it is made once and never changes, and
# reading it was one of a sign-up's round trips to the database.
_SALTS: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()


def suppression_hash(session: Session, email: str) -> str:
    """Salted hash of an address; the salt lives in the database, not the key."""
    engine = session.get_bind()
    salt = _SALTS.get(engine) if isinstance(engine, Engine) else None
    if salt is None:
        row = session.get(AppState, "suppression_salt")
        if row is None:
            row = AppState(key="suppression_salt", value=secrets.token_hex(32))
            session.add(row)
            session.flush()
            # Not remembered yet: a rollback would leave a salt nobody stored.
            session.info["suppression_salt_made"] = True
        elif isinstance(engine, Engine) and not session.info.get("suppression_salt_made"):
            _SALTS[engine] = row.value.encode()
        salt = row.value.encode()
    return hmac.new(salt, email.encode(), hashlib.sha256).hexdigest()


def is_suppressed(session: Session, email: str) -> bool:
    h = suppression_hash(session, email)
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == h)) is not None


def consent_history(session: Session, sub: Subscriber) -> list[dict[str, Any]]:
    """What they agreed to or withdrew, when and from where, oldest first."""
    rows = session.scalars(
        select(ConsentRecord).where(ConsentRecord.subscriber_id == sub.id).order_by(ConsentRecord.id)
    )
    return [
        {
            "action": r.action,
            "at": r.at,
            "text_version": r.text_version,
            "text": r.text,
            "ip": r.ip,
            "user_agent": r.user_agent,
            "page": r.page,
            "utm": dict(parse_qsl(r.utm)) if r.utm else {},
        }
        for r in rows
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_data(session: Session, sub: Subscriber, *, now: datetime | None = None,
                subjects: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything stored about one subscriber, as JSON-ready data.

    ``subjects`` maps step slugs to email subjects, so the export says which
    email each delivery was and not only its internal name.
    """
    subjects = subjects or {}
    profile = {
        "email": sub.email,
        "first_name": sub.first_name,
        "status": sub.status,
        "status_reason": sub.status_reason,
        "time_zone": sub.timezone,
        "signed_up_at": _iso(sub.created_at),
        "confirmation_sent_at": _iso(sub.confirm_sent_at),
        "confirmed_at": _iso(sub.confirmed_at),
        "unsubscribed_at": _iso(sub.unsubscribed_at),
        "paused_until": (None if sub.paused_until is None else
                         "until resumed" if lifecycle.paused_until_resumed(sub) else _iso(sub.paused_until)),
        "referrer": sub.referrer,
        "landing_page": sub.landing_page,
        "utm": {k: v for k in ("source", "medium", "campaign", "term", "content")
                if (v := getattr(sub, f"utm_{k}"))},
    }
    consent = [{**c, "at": _iso(c["at"])} for c in consent_history(session, sub)]
    emails = [
        {
            "email": d.step_slug,
            "kind": d.kind,  # drip, broadcast or system (the confirmation emails)
            "subject": subjects.get(d.step_slug),
            "state": d.state,
            "queued_at": _iso(d.created_at),
            "sent_at": _iso(d.sent_at),
            "events": [{"kind": e.kind, "at": _iso(e.at)}
                       for e in sorted(d.events, key=lambda e: (e.at, e.id))],
        }
        for d in sorted(sub.deliveries, key=lambda d: d.id)
    ]
    out: dict[str, Any] = {"format": EXPORT_FORMAT}
    if now is not None:
        out["exported_at"] = _iso(now)
    from funnel.models import RuleFiring, SequenceEnrollment, SubscriberTag

    tags = [{"tag": t.tag, "added_at": _iso(t.added_at), "source": t.source, "reason": t.reason}
            for t in session.scalars(select(SubscriberTag).where(
                SubscriberTag.subscriber_id == sub.id).order_by(SubscriberTag.tag))]
    sequences = [{"sequence": e.sequence, "state": e.state, "started_at": _iso(e.started_at),
                  "ended_at": _iso(e.ended_at), "reason": e.reason}
                 for e in session.scalars(select(SequenceEnrollment).where(
                     SequenceEnrollment.subscriber_id == sub.id))]
    rules = [{"rule": f.rule, "fired_at": _iso(f.fired_at)}
             for f in session.scalars(select(RuleFiring).where(
                 RuleFiring.subscriber_id == sub.id).order_by(RuleFiring.id))]
    out.update(profile=profile, consent=consent, emails=emails, tags=tags, sequences=sequences,
               rules=rules, waiting_signups=waiting_signups(session, sub.email))
    return out


def waiting_signups(session: Session, email: str) -> list[dict[str, Any]]:
    """Sign-ups of this address the form stored and the worker has not taken in yet
    (``signup_intake``): address, name, IP and user agent are personal data too."""
    rows = session.scalars(select(SignupIntake).where(SignupIntake.email == email)
                           .order_by(SignupIntake.id))
    return [
        {"email": r.email, "first_name": r.first_name, "time_zone": r.timezone,
         "at": _iso(r.at), "ip": r.ip, "user_agent": r.user_agent, "page": r.page,
         "referrer": r.referrer,
         "utm": {k: v for k in ("source", "medium", "campaign", "term", "content")
                 if (v := getattr(r, f"utm_{k}"))}}
        for r in rows
    ]


def export_waiting_only(session: Session, email: str, *, now: datetime) -> dict[str, Any] | None:
    """The export for an address that is only in the intake (the worker has not run
    since it signed up), or None when nothing at all is stored about it."""
    address = normalise_email(email)
    waiting = waiting_signups(session, address)
    if not waiting:
        return None
    return {"format": EXPORT_FORMAT, "exported_at": _iso(now), "profile": None, "consent": [],
            "emails": [], "waiting_signups": waiting}


def erase_waiting(session: Session, email: str, now: datetime) -> int:
    """Delete the address's intake rows and suppress it (so a row the worker is
    taking in right now cannot turn into a subscriber); the number deleted."""
    address = normalise_email(email)
    deleted = session.execute(  # a DELETE gives a CursorResult, which has rowcount
        delete(SignupIntake).where(SignupIntake.email == address)).rowcount  # type: ignore[attr-defined]
    email_hash = suppression_hash(session, address)
    if session.scalar(select(Suppression).where(Suppression.email_hash == email_hash)) is None:
        session.add(Suppression(email_hash=email_hash, reason="erased", created_at=now))
    session.commit()
    return int(deleted or 0)


def erase(session: Session, sub: Subscriber, now: datetime) -> None:
    """Delete everything about the subscriber; keep only a salted hash of the
    address on the suppression list so nothing can mail it by mistake again."""
    email_hash = suppression_hash(session, sub.email)
    # Provider events for mail with no delivery row (the confirmation email) are
    # tied to the subscriber by key; a bounce note may quote the address.
    session.execute(delete(DeliveryEvent).where(DeliveryEvent.subscriber_id == sub.id))
    # A sign-up of the same address still waiting for the worker holds an IP and a
    # user agent too (and would otherwise bring the address back).
    session.execute(delete(SignupIntake).where(SignupIntake.email == sub.email))
    # ORM cascades delete consent records, deliveries and their events.
    session.delete(sub)
    existing = session.scalar(select(Suppression).where(Suppression.email_hash == email_hash))
    if existing is None:
        session.add(Suppression(email_hash=email_hash, reason="erased", created_at=now))
    session.commit()


def find_by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (normalised), or None."""
    address = normalise_email(email)
    return queries.subscriber_by_email(session, address)
