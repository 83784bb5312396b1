"""The dashboard's figures counted again from the raw rows (deliveries, events,
consent records, visits) for any period: the recount every kept figure is tested
against. Production reads only the kept tallies (funnel.reporting)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from funnel.control import failures
from funnel.core import lifecycle
from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber, Visit
from funnel.reporting.figures import EVENT_GROUPS, UNREPORTED_LINK
from funnel.reporting.insights import LinkClicks
from funnel.reporting.periods import day_of, days_in, within
from funnel.reporting.stats import DayRow, Origin, StepRow

SENT = ("sent",)


def people_by_action(session: Session, actions: Sequence[str], start: datetime,
                     end: datetime) -> dict[str, int]:
    row = session.execute(
        select(*(func.count(func.distinct(ConsentRecord.subscriber_id))
                 .filter(ConsentRecord.action == action) for action in actions))
        .where(ConsentRecord.action.in_(actions), within(ConsentRecord.at, start, end))
    ).one()
    return {action: int(n or 0) for action, n in zip(actions, row, strict=True)}


def events_by_group(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    kinds = [k for group in EVENT_GROUPS.values() for k in group]
    row = session.execute(
        select(*(func.count(func.distinct(DeliveryEvent.delivery_id))
                 .filter(DeliveryEvent.kind.in_(group)) for group in EVENT_GROUPS.values()))
        .where(DeliveryEvent.kind.in_(kinds), DeliveryEvent.delivery_id.is_not(None),
               within(DeliveryEvent.at, start, end))
    ).one()
    return {group: int(n or 0) for group, n in zip(EVENT_GROUPS, row, strict=True)}


def sent(session: Session, start: datetime, end: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.state.in_(SENT), within(Delivery.sent_at, start, end))) or 0


def visits(session: Session, start: datetime, end: datetime, *keys: str) -> list[tuple]:
    cols = [day_of(session, Visit.at) if k == "day" else getattr(Visit, k) for k in keys]
    rows = session.execute(select(*cols, func.count()).where(Visit.at >= start, Visit.at < end)
                           .group_by(*cols)).all()
    return [tuple(str(v) if k == "day" else v for k, v in zip(keys, row[:-1], strict=True))
            + (int(row[-1]),) for row in rows if row[-1]]


def people_by_day(session: Session, actions: Sequence[str], start: datetime, end: datetime
                  ) -> list[tuple[Any, ...]]:
    d = day_of(session, ConsentRecord.at).label("day")
    return [(str(day), *(int(n) for n in counts)) for day, *counts in session.execute(
        select(d, *(func.count(func.distinct(ConsentRecord.subscriber_id))
                    .filter(ConsentRecord.action == action) for action in actions))
        .where(ConsentRecord.action.in_(actions), within(ConsentRecord.at, start, end))
        .group_by("day")
    ).all()]


def daily(session: Session, start: datetime, end: datetime) -> list[DayRow]:
    table: dict[str, dict[str, int]] = defaultdict(dict)
    names = {"article": "article_visits", "landing": "landing_visits"}
    for day, page, count in visits(session, start, end, "day", "page"):
        if page in names:
            table[day][names[page]] = count
    consents = {"signup": "signups", "confirm": "confirmations", "withdraw": "unsubscribes"}
    for day, *counts in people_by_day(session, tuple(consents), start, end):
        for name, count in zip(consents.values(), counts, strict=True):
            table[day][name] = count
    d = day_of(session, Delivery.sent_at).label("day")
    for day, count in session.execute(select(d, func.count()).where(
            Delivery.state.in_(SENT), within(Delivery.sent_at, start, end)).group_by("day")):
        table[str(day)]["sent"] = count
    d = day_of(session, DeliveryEvent.at).label("day")
    for day, opened, clicked in session.execute(
        select(d, *(func.count(func.distinct(DeliveryEvent.delivery_id))
                    .filter(DeliveryEvent.kind.in_(EVENT_GROUPS[g])) for g in ("opened", "clicked")))
        .where(DeliveryEvent.kind.in_(EVENT_GROUPS["opened"] + EVENT_GROUPS["clicked"]),
               within(DeliveryEvent.at, start, end))
        .group_by("day")
    ).all():
        table[str(day)]["opened"], table[str(day)]["clicked"] = opened, clicked
    return [DayRow(day=day, **table.get(day.isoformat(), {})) for day in days_in(start, end)]


def people_by_origin(session: Session, start: datetime, end: datetime) -> list[Origin]:
    def did(action: str):
        return func.max(case((ConsentRecord.action == action, 1), else_=0)).label(action)

    people = (select(ConsentRecord.subscriber_id, did("signup"), did("confirm"))
              .where(ConsentRecord.action.in_(("signup", "confirm")),
                     within(ConsentRecord.at, start, end))
              .group_by(ConsentRecord.subscriber_id).subquery())
    ever = aliased(ConsentRecord)
    signed_up = or_(people.c.signup == 1, exists().where(ever.subscriber_id == Subscriber.id,
                                                         ever.action == "signup"))
    origin = (Subscriber.utm_source, Subscriber.referrer, Subscriber.utm_medium,
              Subscriber.utm_campaign, Subscriber.arrived_via)
    return [Origin(*row[:5], *(int(n or 0) for n in row[5:])) for row in session.execute(
        select(*origin, func.sum(people.c.signup), func.sum(people.c.confirm),
               func.sum(case((and_(people.c.confirm == 1, signed_up), 1), else_=0)))
        .join(people, people.c.subscriber_id == Subscriber.id)
        .group_by(*origin)
    ).all()]


def per_step(session: Session, start: datetime, end: datetime, *,
             steps: Sequence[tuple[str, str]] = ()) -> list[StepRow]:
    rows: dict[str, StepRow] = {slug: StepRow(slug, subject) for slug, subject in steps}

    def row(slug: str) -> StepRow:
        return rows.setdefault(slug, StepRow(slug))

    # Confirmation and other system mail is not one of "the emails" people follow.
    sent_in_period = and_(Delivery.state.in_(SENT), within(Delivery.sent_at, start, end),
                          Delivery.kind != "system")
    for slug, count in session.execute(
        select(Delivery.step_slug, func.count()).where(sent_in_period).group_by(Delivery.step_slug)
    ).all():
        row(slug).sent = count
    for group, kinds in EVENT_GROUPS.items():
        if group == "unsubscribed":
            continue  # below: provider reports and our own link together
        for slug, count in session.execute(
            select(Delivery.step_slug, func.count(func.distinct(Delivery.id)))
            .join(DeliveryEvent, DeliveryEvent.delivery_id == Delivery.id)
            .where(sent_in_period, DeliveryEvent.kind.in_(kinds))
            .group_by(Delivery.step_slug)
        ).all():
            row(slug).counts[group] = count
    later = aliased(Delivery)
    reported = exists().where(DeliveryEvent.delivery_id == Delivery.id,
                              DeliveryEvent.kind.in_(EVENT_GROUPS["unsubscribed"]))
    # Our own link: the last email sent before the person unsubscribed.
    via_link = and_(
        Subscriber.unsubscribed_at.is_not(None),
        Subscriber.unsubscribed_at >= Delivery.sent_at,
        ~exists().where(later.subscriber_id == Delivery.subscriber_id,
                        later.state.in_(SENT), later.sent_at > Delivery.sent_at,
                        later.sent_at <= Subscriber.unsubscribed_at),
    )
    for slug, count in session.execute(
        select(Delivery.step_slug, func.count(func.distinct(Delivery.id)))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(sent_in_period, or_(reported, via_link))
        .group_by(Delivery.step_slug)
    ).all():
        row(slug).counts["unsubscribed"] = count
    return list(rows.values())


def clicks_per_link(session: Session, start: datetime, end: datetime
                    ) -> dict[str, list[LinkClicks]]:
    url = func.coalesce(DeliveryEvent.detail, UNREPORTED_LINK)
    out: dict[str, list[LinkClicks]] = defaultdict(list)
    for slug, link, clicks, people in session.execute(
        select(DeliveryEvent.step_slug, url, func.count(),
               func.count(func.distinct(DeliveryEvent.delivery_id)))
        .where(and_(DeliveryEvent.kind == "click", DeliveryEvent.step_slug.is_not(None),
                    within(DeliveryEvent.at, start, end)))
        .group_by(DeliveryEvent.step_slug, url)
    ).all():
        out[str(slug)].append(LinkClicks(str(slug), link, clicks, people))
    return {slug: sorted(links, key=lambda c: (-c.clicks, c.url)) for slug, links in out.items()}


def problems(session: Session, subjects: dict[str, str] | None = None
             ) -> list[failures.StepProblems]:
    """The problems panel counted from the sends and their subscribers."""
    subjects = subjects or {}
    steps: dict[str, failures.StepProblems] = {}
    reasons: dict[str, Counter[str]] = {}
    for slug, state, error, status, kind, n in session.execute(
        select(Delivery.step_slug, Delivery.state, Delivery.error, Subscriber.status,
               Delivery.kind, func.count())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.state.in_(failures.PROBLEM_STATES))
        .group_by(Delivery.step_slug, Delivery.state, Delivery.error, Subscriber.status,
                  Delivery.kind)
    ).all():
        if kind != "drip":  # system mail carries a per-send suffix: group by the email
            slug = slug.rsplit("-", 1)[0]
        retryable = n if kind == "drip" and lifecycle.can_receive_sequence(status) else 0
        failures._add(steps, reasons, subjects, slug, state, error, n, retryable)
    return failures._listed(steps, reasons)


def broadcast_progress(session: Session, row: Any):
    """A newsletter issue's progress counted from every reader and every email of it
    (what ``scheduling.progress`` read before the counts were kept)."""
    from funnel.models import BroadcastRecipient
    from funnel.newsletter.scheduling import BROADCAST_KIND, progress_from

    by_outcome = dict(session.execute(
        select(BroadcastRecipient.outcome, func.count())
        .where(BroadcastRecipient.broadcast_id == row.id)
        .group_by(BroadcastRecipient.outcome)).all())
    states = dict(session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.step_slug == row.slug, Delivery.kind == BROADCAST_KIND)
        .group_by(Delivery.state)).all())
    return progress_from(by_outcome, states)
