"""Who gets a broadcast, and why the others do not.

The audience is every confirmed subscriber who wants the newsletter and is not
paused, narrowed by the broadcast's filter. Pending, unsubscribed, bounced and
complained people are never in it; erased people no longer exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from funnel.core import lifecycle
from funnel.core.broadcast import PLAN_FINISHED, PLAN_IN_PLAN, Filter
from funnel.core.sequence import EmailFileError, load_sequence
from funnel.models import Delivery, Subscriber, SubscriberTag

DONE_STATES = ("sent", "failed", "unknown")


def not_paused(now: datetime) -> ColumnElement[bool]:
    return or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now)


def reachable(now: datetime) -> ColumnElement[bool]:
    """Confirmed, wants the newsletter and not paused: may get a broadcast now."""
    # The bare column (not IS TRUE) so PostgreSQL counts it from the partial index
    # ix_subscriber_newsletter_audience alone: the newsletters page at a million.
    return and_(Subscriber.status == lifecycle.CONFIRMED,
                Subscriber.wants_newsletter, not_paused(now))


def matches(flt: Filter, last_step: str | None) -> ColumnElement[bool]:
    """The filter as a SQL condition (every part set must hold)."""
    conds: list[ColumnElement[bool]] = []
    if flt.plan is not None:
        finished = (
            select(Delivery.id)
            .where(Delivery.subscriber_id == Subscriber.id,
                   Delivery.step_slug == (last_step or ""),
                   Delivery.state.in_(DONE_STATES))
            .exists()
        )
        if flt.plan == PLAN_FINISHED:
            conds.append(finished)
        elif flt.plan == PLAN_IN_PLAN:
            conds.append(not_(finished))
    if flt.signed_up_before is not None:
        conds.append(Subscriber.created_at < _day(flt.signed_up_before))
    if flt.signed_up_after is not None:
        conds.append(Subscriber.created_at >= _day(flt.signed_up_after))
    if flt.source is not None:
        v = flt.source.lower()
        # coalesce: a NULL column would make the condition NULL, and then its negation
        # ("outside the filter" in the breakdown) would miss the row too.
        conds.append(or_(func.coalesce(func.lower(Subscriber.utm_source), "") == v,
                         func.coalesce(func.lower(Subscriber.referrer), "") == v))
    if flt.campaign is not None:
        conds.append(func.coalesce(func.lower(Subscriber.utm_campaign), "")
                     == flt.campaign.lower())
    if flt.tag is not None:
        conds.append(Subscriber.id.in_(_tagged(flt.tag)))
    if flt.without_tag is not None:
        conds.append(Subscriber.id.not_in(_tagged(flt.without_tag)))
    if flt.wants_plan is not None:
        conds.append(Subscriber.wants_plan.is_(flt.wants_plan == "yes"))
    return and_(True, *conds)


def _tagged(tag: str):
    """Everyone with ``tag``: read from the tag's index, not per subscriber."""
    return select(SubscriberTag.subscriber_id).where(SubscriberTag.tag == tag)


def _day(d) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def audience_ids(flt: Filter, last_step: str | None, now: datetime):
    return select(Subscriber.id).where(reachable(now), matches(flt, last_step))


@dataclass(frozen=True)
class Breakdown:
    """How many would get it, and how many would not and why."""

    would_get: int
    outside_filter: int
    wrong_topic: int
    paused: int
    not_confirmed: int
    unsubscribed: int
    bounced_or_complained: int

    def lines(self) -> list[tuple[str, int]]:
        return [
            ("would get it", self.would_get),
            ("outside the filter", self.outside_filter),
            ("turned the newsletter off (wrong topic)", self.wrong_topic),
            ("paused", self.paused),
            ("not confirmed yet", self.not_confirmed),
            ("unsubscribed", self.unsubscribed),
            ("bounced or marked as spam", self.bounced_or_complained),
        ]


def would_get(session: Session, flt: Filter, last_step: str | None, now: datetime) -> int:
    """How many would get a broadcast now: ``breakdown(...).would_get`` in one count,
    for the newsletters page, which shows only that for each draft."""
    return int(session.scalar(select(func.count()).select_from(Subscriber).where(
        reachable(now), matches(flt, last_step))) or 0)


def breakdown(session: Session, flt: Filter, last_step: str | None, now: datetime) -> Breakdown:
    confirmed = Subscriber.status == lifecycle.CONFIRMED
    wants = Subscriber.wants_newsletter.expression  # bare: see reachable()
    paused = not_(not_paused(now))
    match = matches(flt, last_step)

    parts = {
        "would_get": and_(confirmed, wants, not_(paused), match),
        "outside_filter": and_(confirmed, wants, not_(paused), not_(match)),
        "wrong_topic": and_(confirmed, not_(wants)),
        "paused": and_(confirmed, wants, paused),
        "not_confirmed": Subscriber.status == lifecycle.PENDING,
        "unsubscribed": Subscriber.status == lifecycle.UNSUBSCRIBED,
        "bounced_or_complained": Subscriber.status.in_(lifecycle.SUPPRESSED),
    }
    # One pass over the list for all seven (FILTER), where seven counts each read it:
    # the page at a million readers.
    counts = session.execute(select(*(func.count().filter(cond).label(name)
                                      for name, cond in parts.items()))
                             .select_from(Subscriber)).one()
    return Breakdown(**{name: int(getattr(counts, name) or 0) for name in parts})


def plan_last_step(emails_dir: str) -> str | None:
    """The plan's last email: having had it is what "finished the plan" means."""
    try:
        steps = load_sequence(emails_dir).steps
    except EmailFileError:
        return None
    return steps[-1].slug if steps else None
