"""What a subscriber controls: pausing, their profile, their data. No Flask in here.

Every change is committed at once and moves ``next_due_at`` so the worker's very
next pass acts on it. Erasure keeps nothing but a salted hash of the address in
the suppression list, so the address cannot be mailed again by a later import
or API call (``services.subscribe`` checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import available_timezones

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from funnel import services
from funnel.core import lifecycle
from funnel.models import ConsentRecord, DeliveryEvent, Subscriber, Suppression
from funnel.services import FunnelError

# "Until I resume" is a pause that ends so far ahead it never does. Not
# datetime.max: schedule arithmetic on it (time zones, +1 day) must not overflow.
UNTIL_RESUMED = datetime(9000, 1, 1, tzinfo=UTC)
PAUSE_CHOICES: dict[str, timedelta | None] = {
    "1w": timedelta(weeks=1),
    "2w": timedelta(weeks=2),
    "resume": None,  # until the subscriber resumes
}
EXPORT_FORMAT = "run-stronger-subscriber-data/1"


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """IANA zone names a subscriber may choose (the same set sign-up accepts), sorted."""
    return tuple(sorted(available_timezones()))


def pause_end(choice: str, now: datetime) -> datetime:
    """When a pause chosen on the page ends; raises FunnelError for anything else."""
    if choice not in PAUSE_CHOICES:
        raise FunnelError("Please choose how long to pause for.", "pause")
    length = PAUSE_CHOICES[choice]
    return UNTIL_RESUMED if length is None else now + length


def is_paused(sub: Subscriber, now: datetime) -> bool:
    return sub.paused_until is not None and sub.paused_until > now


def paused_until_resumed(sub: Subscriber) -> bool:
    return sub.paused_until is not None and sub.paused_until >= UNTIL_RESUMED


def pause(session: Session, sub: Subscriber, until: datetime, now: datetime) -> None:
    """Hold the plan until ``until``; nothing is sent in between, nothing is skipped."""
    if sub.status != lifecycle.CONFIRMED:
        raise FunnelError("Only an active subscription can be paused.", "pause")
    if until <= now:
        raise FunnelError("A pause has to end in the future.", "pause")
    sub.paused_until = until
    # The worker would hold them anyway; moving the cursor saves it the visit.
    if sub.next_due_at is not None:
        sub.next_due_at = max(sub.next_due_at, until)
    session.commit()


def resume(session: Session, sub: Subscriber, now: datetime) -> bool:
    """End a pause now. Returns False when there was no pause to end."""
    was_paused = is_paused(sub, now)
    sub.paused_until = None
    if sub.status == lifecycle.CONFIRMED:
        # The worker re-decides on its next pass: the next step goes out when due
        # (at once if it fell due during the pause, inside the sending window).
        sub.next_due_at = now
    session.commit()
    return was_paused


def update_profile(session: Session, sub: Subscriber, *, first_name: str | None,
                   tz: str, now: datetime) -> bool:
    """Change the name emails greet with and the zone they are timed in.

    Returns True if anything changed. Raises FunnelError (with the field) when
    a value cannot be used; nothing is saved then.
    """
    name = (first_name or "").strip() or None
    if name and any(c in name for c in "\r\n\x00"):
        raise FunnelError("Please use a first name without line breaks.", "first_name")
    if name and len(name) > 80:
        raise FunnelError("That first name is too long (80 characters at most).", "first_name")
    if tz not in time_zones():
        raise FunnelError("Please choose a time zone from the list.", "timezone")
    changed = (name, tz) != (sub.first_name, sub.timezone)
    if tz != sub.timezone and sub.status == lifecycle.CONFIRMED:
        sub.next_due_at = now  # re-plan the next email in the new zone's sending window
    sub.first_name, sub.timezone = name, tz
    session.commit()
    return changed


def resubscribe(session: Session, sub: Subscriber, *, meta: services.SignupMeta,
                now: datetime) -> Subscriber | None:
    """Sign an unsubscribed person up again: back to pending, so they must confirm
    the address before anything but the confirmation email is sent. Returns the
    subscriber to send the confirmation to, or None."""
    if sub.status != lifecycle.UNSUBSCRIBED:
        return None
    return services.subscribe(session, email=sub.email, first_name=sub.first_name,
                              timezone=sub.timezone, meta=meta, now=now)


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
                         "until resumed" if paused_until_resumed(sub) else _iso(sub.paused_until)),
        "referrer": sub.referrer,
        "landing_page": sub.landing_page,
        "utm": {k: v for k in ("source", "medium", "campaign", "term", "content")
                if (v := getattr(sub, f"utm_{k}"))},
    }
    consent = [{**c, "at": _iso(c["at"])} for c in consent_history(session, sub)]
    emails = [
        {
            "email": d.step_slug,
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
    out.update(profile=profile, consent=consent, emails=emails)
    return out


def erase(session: Session, sub: Subscriber, now: datetime) -> None:
    """Delete everything about the subscriber; keep only a salted hash of the
    address on the suppression list so nothing can mail it by mistake again."""
    email_hash = services.suppression_hash(session, sub.email)
    # ORM cascades delete consent records, deliveries and their events.
    session.delete(sub)
    # Provider events for mail with no delivery row (the confirmation email) are
    # tied to nobody; a bounce note may still quote the address.
    session.execute(
        delete(DeliveryEvent)
        .where(DeliveryEvent.delivery_id.is_(None))
        .where(func.lower(DeliveryEvent.detail).contains(sub.email, autoescape=True))
    )
    existing = session.scalar(select(Suppression).where(Suppression.email_hash == email_hash))
    if existing is None:
        session.add(Suppression(email_hash=email_hash, reason="erased", created_at=now))
    session.commit()


def find_by_email(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (normalised), or None."""
    address = services.normalise_email(email)
    return session.scalar(select(Subscriber).where(Subscriber.email == address))
