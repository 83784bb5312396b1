"""Subscriber use cases: named verbs that own their transactions. No Flask in here.

subscribe, confirm, unsubscribe, pause, resume, update_profile, resubscribe. Every
change is committed at once and moves ``next_due_at`` so the worker's very next
pass acts on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from funnel import metrics
from funnel.core import lifecycle
from funnel.core.inputs import FunnelError, clean_first_name, normalise_email, time_zones
from funnel.core.lifecycle import UNTIL_RESUMED, is_paused
from funnel.core.states import ConsentAction
from funnel.core.tokens import BadToken, ExpiredToken
from funnel.mail.compose import Composer
from funnel.models import ConsentRecord, Subscriber
from funnel.subscribers import system_mail
from funnel.subscribers.privacy import is_suppressed

log = logging.getLogger(__name__)

CONSENT_VERSION = "2026-11-v2"
# Both topics are named: the sign-up turns on the free plan and the newsletter.
CONSENT_TEXT = (
    "Email me the Run Stronger free plan (the lateral hip stretch, then about one "
    "email a week for six weeks) and the Run Stronger newsletter every few weeks. "
    "I can stop either one, or unsubscribe from both with one click, at any time. "
    "My address is used for nothing else."
)

@dataclass(frozen=True)
class SignupMeta:
    ip: str | None = None
    user_agent: str | None = None
    page: str | None = None
    referrer: str | None = None
    utm: dict[str, str] | None = None
    via: str | None = None  # "article" when the landing page was reached from the article


def subscribe(
    session: Session,
    *,
    email: str,
    first_name: str | None,
    timezone: str,
    meta: SignupMeta,
    now: datetime,
) -> Subscriber | None:
    """Record a sign-up and queue its email for the worker (a confirmation, or
    "you're already on the list"). Returns the subscriber when mail was queued, so
    the caller can wake the worker, else None.

    The caller shows the same page in every case, so nobody can learn whether an
    address is on the list.
    """
    first_name = clean_first_name(first_name)
    email = normalise_email(email)
    for attempt in range(2):
        try:
            result, signed_up = _subscribe_once(session, email, first_name, timezone, meta, now)
            session.commit()
            if signed_up:
                metrics.SIGNUPS.inc()
            return result
        except IntegrityError:
            # Two sign-ups for one new address raced; the second sees the first.
            session.rollback()
            if attempt:
                raise
    return None


def _subscribe_once(session, email, first_name, timezone, meta, now, *, late=False):
    """The same work for every address, new or known (a queued row, never a send),
    so the answer's timing tells nobody whether an address is on the list.
    ``late``: taken from the intake after the request, as of its time ``now``.
    Returns (the subscriber when mail was queued, whether someone new signed up)."""
    if is_suppressed(session, email):
        return None, False
    # Locked, so two sign-ups for one address at once decide one after the other.
    sub = session.scalar(select(Subscriber).where(Subscriber.email == email).with_for_update())
    if sub is None:
        sub = Subscriber(email=email, status=lifecycle.PENDING, created_at=now, timezone=timezone,
                         first_name=first_name)
        session.add(sub)
        _take_source(sub, timezone, meta)
        fresh = True
    elif sub.status == lifecycle.CONFIRMED:
        # Same page as everyone; the owner of the address learns they are on the list.
        return (sub if system_mail.queue(session, sub, system_mail.ALREADY, now) else None), False
    elif sub.status == lifecycle.UNSUBSCRIBED:
        if late and sub.unsubscribed_at is not None and sub.unsubscribed_at > now:
            # They unsubscribed after they asked: their later word wins, whenever
            # the worker gets to the sign-up.
            return None, False
        sub.status = lifecycle.transition(sub.status, lifecycle.PENDING)
        sub.unsubscribed_at = None
        sub.confirmed_at = None
        sub.status_reason = None
        # A fresh sign-up: where it came from is new; a name already held is kept
        # (a stranger's text must not reach the drip once the owner confirms).
        sub.first_name = sub.first_name or first_name
        _take_source(sub, timezone, meta)
        fresh = True
    elif sub.status != lifecycle.PENDING:  # bounced, complained: nothing changes
        return None, False
    else:
        fresh = False  # asked again while pending: the same person, not a new sign-up
    # A pending person's name, zone and source stay as they first gave them.
    utm = meta.utm or {}
    session.add(
        ConsentRecord(
            subscriber=sub, action=ConsentAction.SIGNUP, at=now, text_version=CONSENT_VERSION,
            text=CONSENT_TEXT, ip=meta.ip, user_agent=(meta.user_agent or "")[:500] or None,
            page=(meta.page or "")[:500] or None,
            utm=urlencode([(f"utm_{k}", v[:100]) for k, v in utm.items() if v])[:600] or None,
        )
    )
    # No flush before queueing: a new subscriber's rows (subscriber with its
    # confirm_sent_at, consent, delivery) then go out in one flush, without the
    # UPDATE and the empty read of its deliveries a flush in between costs.
    return (sub if system_mail.queue(session, sub, system_mail.CONFIRM, now) else None), fresh


# -- the sign-up form's intake: one INSERT in the request, the rest in the worker --


def _take_source(sub: Subscriber, timezone: str, meta: SignupMeta) -> None:
    sub.timezone = timezone
    utm = meta.utm or {}
    sub.referrer = (meta.referrer or "")[:500] or None
    sub.landing_page = (meta.page or "")[:500] or None
    sub.arrived_via = "article" if meta.via == "article" else "direct"
    for key in ("source", "medium", "campaign", "term", "content"):
        setattr(sub, f"utm_{key}", (utm.get(key) or "")[:100] or None)


def request_confirmation(session: Session, sub: Subscriber, now: datetime) -> bool:
    """Queue a fresh confirmation link for the worker, within the per-address caps
    (funnel/system_mail.py). True when the worker has one to send."""
    queued = sub.status == lifecycle.PENDING and system_mail.queue(
        session, sub, system_mail.CONFIRM, now)
    session.commit()
    return queued


@dataclass(frozen=True)
class ConfirmResult:
    outcome: str  # confirmed, already, expired, invalid
    subscriber: Subscriber | None = None


def confirm(
    session: Session, composer: Composer, token: str, *, now: datetime, max_age: timedelta,
    meta: SignupMeta | None = None,
) -> ConfirmResult:
    try:
        public_id = composer.tokens.load("confirm", token, max_age=int(max_age.total_seconds()))
    except ExpiredToken as exc:
        sub = subscriber_from_public_id(session, exc.payload)
        return ConfirmResult("expired", sub)
    except BadToken:
        return ConfirmResult("invalid")
    sub = subscriber_from_public_id(session, public_id)
    if sub is None:
        return ConfirmResult("invalid")
    if sub.status == lifecycle.CONFIRMED:
        return ConfirmResult("already", sub)
    if sub.status != lifecycle.PENDING:
        return ConfirmResult("invalid")
    sub.status = lifecycle.transition(sub.status, lifecycle.CONFIRMED)
    sub.confirmed_at = now
    sub.next_due_at = now  # the worker sends step 1 on its next pass
    meta = meta or SignupMeta()
    session.add(ConsentRecord(
        subscriber=sub, action=ConsentAction.CONFIRM, at=now, text_version=CONSENT_VERSION,
        ip=meta.ip, user_agent=(meta.user_agent or "")[:500] or None,
    ))
    session.commit()
    metrics.CONFIRMATIONS.inc()
    return ConfirmResult("confirmed", sub)


def confirm_by_hand(session: Session, sub: Subscriber, *, admin: str, reason: str,
                    now: datetime) -> None:
    """An admin confirms a pending subscriber (they agreed some other way).

    Who did it and why go into the consent history; a reason is required.
    """
    reason = " ".join((reason or "").split())
    if len(reason) < 5:
        raise FunnelError("Say why you are confirming this person (it is kept in their "
                          "consent history).", "reason")
    if len(reason) > 300:
        raise FunnelError("Keep the reason under 300 characters.", "reason")
    if sub.status != lifecycle.PENDING:
        raise FunnelError("Only someone who has not confirmed yet can be confirmed by hand.",
                          "reason")
    sub.status = lifecycle.transition(sub.status, lifecycle.CONFIRMED)
    sub.confirmed_at = now
    sub.next_due_at = now
    session.add(ConsentRecord(
        subscriber=sub, action=ConsentAction.CONFIRM, at=now, text_version=CONSENT_VERSION,
        text=f"Confirmed by hand by {admin}: {reason}"[:2000], page="admin", stated_by=admin,
    ))
    session.commit()


def subscriber_from_public_id(session: Session, public_id: object) -> Subscriber | None:
    if not isinstance(public_id, str):
        return None
    return session.scalar(select(Subscriber).where(Subscriber.public_id == public_id))


def subscriber_from_token(session: Session, composer: Composer, purpose: str, token: str
                          ) -> Subscriber | None:
    try:
        payload = composer.tokens.load(purpose, token)
    except BadToken:
        return None
    return subscriber_from_public_id(session, payload)


def unsubscribe(session: Session, sub: Subscriber, *, now: datetime, reason: str,
                meta: SignupMeta | None = None) -> bool:
    """Stop all mail at once. Returns False when there was nothing to stop."""
    if sub.status not in (lifecycle.PENDING, lifecycle.CONFIRMED):
        return False
    sub.status = lifecycle.transition(sub.status, lifecycle.UNSUBSCRIBED)
    sub.unsubscribed_at = now
    sub.status_reason = reason
    sub.next_due_at = None
    meta = meta or SignupMeta()
    session.add(ConsentRecord(
        subscriber=sub, action=ConsentAction.WITHDRAW, at=now, text=reason, ip=meta.ip,
        user_agent=(meta.user_agent or "")[:500] or None,
    ))
    session.commit()
    return True


# -- what a subscriber controls from the preference page --------------------


PAUSE_CHOICES: dict[str, timedelta | None] = {
    "1w": timedelta(weeks=1),
    "2w": timedelta(weeks=2),
    "resume": None,  # until the subscriber resumes
}


def pause_end(choice: str, now: datetime) -> datetime:
    """When a pause chosen on the page ends; raises FunnelError for anything else."""
    if choice not in PAUSE_CHOICES:
        raise FunnelError("Please choose how long to pause for.", "pause")
    length = PAUSE_CHOICES[choice]
    return UNTIL_RESUMED if length is None else now + length


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
    name = clean_first_name(first_name)
    if tz not in time_zones():
        raise FunnelError("Please choose a time zone from the list.", "timezone")
    changed = (name, tz) != (sub.first_name, sub.timezone)
    if tz != sub.timezone and sub.status == lifecycle.CONFIRMED:
        sub.next_due_at = now  # re-plan the next email in the new zone's sending window
    sub.first_name, sub.timezone = name, tz
    session.commit()
    return changed


def resubscribe(session: Session, sub: Subscriber, *, meta: SignupMeta,
                now: datetime) -> Subscriber | None:
    """Sign an unsubscribed person up again: back to pending, so they must confirm
    the address before anything but the confirmation email is sent. Returns the
    subscriber to send the confirmation to, or None."""
    if sub.status != lifecycle.UNSUBSCRIBED:
        return None
    return subscribe(session, email=sub.email, first_name=sub.first_name,
                              timezone=sub.timezone, meta=meta, now=now)


# -- topics: the free plan and the newsletter (issue 13) ----------------------

PLAN = "plan"
NEWSLETTER = "newsletter"
TOPICS = (PLAN, NEWSLETTER)
TOPIC_FIELDS = {PLAN: "wants_plan", NEWSLETTER: "wants_newsletter"}


def set_topic(session: Session, sub: Subscriber, topic: str, on: bool, *, now: datetime,
              meta: SignupMeta | None = None) -> str:
    """Turn the plan or the newsletter on or off; commits.

    Returns "on", "off", "unchanged" or "unsubscribed": turning off the only topic
    left is unsubscribing (a confirmed subscriber who wants nothing is not on a list).
    """
    if topic not in TOPICS:
        raise FunnelError("Choose the plan or the newsletter.", field="topic")
    if sub.status != lifecycle.CONFIRMED:
        raise FunnelError("Only a confirmed subscription has topics to change.", field="topic")
    field, other = TOPIC_FIELDS[topic], TOPIC_FIELDS[NEWSLETTER if topic == PLAN else PLAN]
    if bool(getattr(sub, field)) == on:
        return "unchanged"
    if not on and not getattr(sub, other):
        unsubscribe(session, sub, now=now, meta=meta,
                    reason="stopped both the plan and the newsletter (preference page)")
        return "unsubscribed"
    setattr(sub, field, on)
    if topic == PLAN:
        # Off: the plan's cursor stops. On: the worker re-decides on its next pass and
        # the plan carries on where it left off.
        sub.next_due_at = now if on else None
    session.commit()
    return "on" if on else "off"
