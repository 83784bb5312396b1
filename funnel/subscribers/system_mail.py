"""Mail the system sends to one address (confirm, already-subscribed), queued for
the worker as ``delivery`` rows of kind ``system`` so the web request never sends.

Caps, per address and whatever its status (unsubscribing and signing up again
does not reset them): at most ``CAP`` such emails in ``CAP_PERIOD``, the n-th
at least ``GAPS[n-1]`` after the previous one. A stranger typing someone's
address into the form can cause at most three emails a month.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from funnel.core import lifecycle
from funnel.mail.sending import HELD, QUEUED, RETRY, SENDING, SYSTEM
from funnel.models import Delivery, Subscriber, new_public_id
from funnel.transports import Message

if TYPE_CHECKING:  # the worker passes its plain rows
    from funnel.drip.rows import DeliveryRow, SubscriberRow

CONFIRM = "confirm"
ALREADY = "already-subscribed"
FRESH_LINK = "fresh-link"  # a new preference link, asked for from an expired one
NAMES = (CONFIRM, ALREADY, FRESH_LINK)
CAP = 3
CAP_PERIOD = timedelta(days=30)
GAPS = (timedelta(minutes=5), timedelta(hours=1), timedelta(hours=24))

REASONS = {
    CONFIRM: "You are getting this because this address was entered on the Run Stronger "
             "free plan form. Until you confirm, we will not email you again.",
    ALREADY: "You are getting this because this address was entered on the Run Stronger "
             "free plan form and is already on the list.",
    FRESH_LINK: "You are getting this because a new link to your Run Stronger preference "
                "page was asked for from one of our older emails.",
}
# Who may still receive each email when the worker gets to it.
STATUS_FOR = {CONFIRM: lifecycle.PENDING, ALREADY: lifecycle.CONFIRMED,
              FRESH_LINK: lifecycle.CONFIRMED}


def name_of(d: Delivery | DeliveryRow) -> str:
    return d.step_slug.rsplit("-", 1)[0]


def allowed(sub: Subscriber, now: datetime) -> bool:
    """Whether one more system email to this address stays within the caps."""
    recent = sorted(d.created_at for d in sub.deliveries
                     if d.kind == SYSTEM and d.created_at > now - CAP_PERIOD)
    if len(recent) >= CAP:
        return False
    return not recent or now - recent[-1] >= GAPS[min(len(recent), len(GAPS)) - 1]


def queue(session: Session, sub: Subscriber, name: str, now: datetime) -> bool:
    """Queue ``name`` for ``sub`` if the caps allow; True when the worker has mail to
    send (also when one of the same kind was still waiting: it is brought forward)."""
    waiting = [d for d in sub.deliveries if d.kind == SYSTEM and name_of(d) == name
               and d.state in (QUEUED, RETRY, HELD)]
    if waiting:
        # "Submit again" after a failed send: try the waiting one now, add none.
        for d in waiting:
            d.retry_at = min(d.retry_at or now, now)
        return True
    if any(d.kind == SYSTEM and d.state == SENDING for d in sub.deliveries):
        return False
    if not allowed(sub, now):
        return False
    sub.deliveries.append(Delivery(
        public_id=new_public_id(), kind=SYSTEM, step_slug=f"{name}-{now:%Y%m%dT%H%M%S}",
        state=QUEUED, attempts=0, created_at=now, retry_at=now))
    if name == CONFIRM:
        sub.confirm_sent_at = now
    session.flush()
    return True


def render(composer, sub: Subscriber | SubscriberRow, d: Delivery | DeliveryRow, key: str,
           now: datetime) -> Message:
    """The email, addressed without any name typed into the form: until someone
    confirms, what a stranger typed must not land in the inbox."""
    name = name_of(d)
    extra = {"reason": REASONS[name], "first_name": "there"}
    if name == CONFIRM:
        # Not subscribed yet: there are no preferences to change.
        extra["preferences_url"] = ""
    if name == ALREADY:
        # They came back for the plan: say where they are with it (see plan/stage.py).
        from funnel.plan import stage

        where = stage.plan_stage(sub, stage.last_step(composer.settings.emails_dir), now)
        extra["plan_status"] = stage.ALREADY_SAYS.get(where, stage.ALREADY_SAYS[stage.IN_PLAN])
    msg = composer.message(
        composer.system_source(name), sub, key=key, now=now, list_mail=False, extra=extra,
    )
    return replace(msg, to_name=None)


def hold(sub: Subscriber | SubscriberRow, d: Delivery | DeliveryRow) -> bool:
    """Re-checked under the row lock: a confirmation only to someone still pending,
    "already on the list" only to someone still confirmed."""
    return sub.status != STATUS_FOR.get(name_of(d))


