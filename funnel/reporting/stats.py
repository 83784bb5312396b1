"""How the funnel is doing: counts for a period, by day, by source and per email step.

No Flask in here. Every function takes a session and a half-open period
``[start, end)`` of aware datetimes; days are UTC days.

What is counted, and why:
- Visits are ``Visit`` rows (article and landing page), which hold no personal data.
- Sign-ups and confirmations are the consent records written at those moments,
  counted once per person per period, so someone who asks for the confirmation
  email three times is one sign-up. Imported subscribers have an ``import``
  record instead and are reported apart: they never came through the funnel.
- Per-step engagement follows the emails *sent* in the period (a cohort), so a
  rate is "of the step-3 emails sent this month, how many were opened", never
  above 100% because an open arrived after the period ended.
- An unsubscribe is credited to a step when the provider reported it for that
  email, or when it was the last email the person got before unsubscribing
  through our own link (which the provider never sees).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber
from funnel.reporting import email_tally, people_tally, tallies
from funnel.reporting.periods import day_of, days_in, rate, within

# Provider event kinds (funnel.subscribers.provider_events) grouped into what the marketer reads.
EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "delivered": ("delivered",),
    "opened": ("open",),
    "clicked": ("click",),
    "unsubscribed": ("unsubscribe", "group_unsubscribe"),
    "bounced": ("bounce", "dropped"),
    "complained": ("spamreport",),
}
SENT_STATES = ("sent",)
DIRECT = "(direct or internal)"
NONE_LABEL = "(none)"
DIMENSIONS = ("source", "medium", "campaign")


# -- the funnel ----------------------------------------------------------------

@dataclass(frozen=True)
class FunnelCounts:
    """What happened in a period, from the first visit to the last click."""

    article_visits: int = 0
    landing_visits: int = 0
    signups: int = 0
    confirmations: int = 0
    imported: int = 0
    unsubscribes: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0

    @property
    def stages(self) -> list[tuple[str, str, int, float | None]]:
        """(key, label, count, conversion from the stage before) for the funnel chart."""
        rows = [
            ("article_visits", "Article visits", self.article_visits),
            ("landing_visits", "Landing page visits", self.landing_visits),
            ("signups", "Sign-ups", self.signups),
            ("confirmations", "Confirmations", self.confirmations),
        ]
        out: list[tuple[str, str, int, float | None]] = []
        previous: int | None = None
        for key, label, count in rows:
            out.append((key, label, count, None if previous is None else rate(count, previous)))
            previous = count
        return out

    @property
    def landing_to_signup(self) -> float | None:
        return rate(self.signups, self.landing_visits)

    @property
    def signup_to_confirmation(self) -> float | None:
        return rate(self.confirmations, self.signups)


def _people_by_action(session: Session, actions: Sequence[str], start: datetime, end: datetime
                      ) -> dict[str, int]:
    """People with a consent record of each action in the period, once per person.

    Whole UTC days from the cells kept by triggers (funnel.reporting.people_tally); other
    periods in one pass over the period's records with an aggregate per action."""
    days = tallies.whole_days(start, end)
    if days is not None:
        return people_tally.by_action(session, actions, *days)
    row = session.execute(
        select(*(func.count(func.distinct(ConsentRecord.subscriber_id))
                 .filter(ConsentRecord.action == action) for action in actions))
        .where(ConsentRecord.action.in_(actions), within(ConsentRecord.at, start, end))
    ).one()
    return {action: int(n or 0) for action, n in zip(actions, row, strict=True)}


def _events_by_group(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Sequence emails with each kind of event in the period (opened twice is one open).

    Events for the confirmation email have no delivery and are left out here: the
    funnel counts them as confirmations, and a bounce shows in the list's statuses.
    Whole UTC days from the cells kept by triggers (funnel.reporting.email_tally); other periods
    in one pass over the period's events (an aggregate per group).
    """
    days = tallies.whole_days(start, end)
    if days is not None:
        kept = email_tally.by_group(session, *days)
        return {group: kept.get(group, 0) for group in EVENT_GROUPS}
    kinds = [k for group in EVENT_GROUPS.values() for k in group]
    row = session.execute(
        select(*(func.count(func.distinct(DeliveryEvent.delivery_id))
                 .filter(DeliveryEvent.kind.in_(group)) for group in EVENT_GROUPS.values()))
        .where(DeliveryEvent.kind.in_(kinds), DeliveryEvent.delivery_id.is_not(None),
               within(DeliveryEvent.at, start, end))
    ).one()
    return {group: int(n or 0) for group, n in zip(EVENT_GROUPS, row, strict=True)}


def funnel_counts(session: Session, start: datetime, end: datetime) -> FunnelCounts:
    visits = dict(tallies.visits(session, start, end, "page"))
    days = tallies.whole_days(start, end)
    if days is not None:
        sent = sum(tallies.sent_by_day(session, *days).values())
    else:
        sent = session.scalar(
            select(func.count()).select_from(Delivery)
            .where(Delivery.state.in_(SENT_STATES), within(Delivery.sent_at, start, end))
        ) or 0
    events = _events_by_group(session, start, end)
    people = _people_by_action(session, ("signup", "confirm", "import", "withdraw"), start, end)
    return FunnelCounts(
        article_visits=visits.get("article", 0),
        landing_visits=visits.get("landing", 0),
        signups=people["signup"],
        confirmations=people["confirm"],
        imported=people["import"],
        unsubscribes=people["withdraw"],
        sent=sent,
        delivered=events["delivered"],
        opened=events["opened"],
        clicked=events["clicked"],
        bounced=events["bounced"],
        complained=events["complained"],
    )


# -- by day --------------------------------------------------------------------

DAILY_COLUMNS = ("article_visits", "landing_visits", "signups", "confirmations",
                 "unsubscribes", "sent", "opened", "clicked")


@dataclass(frozen=True)
class DayRow:
    day: date
    article_visits: int = 0
    landing_visits: int = 0
    signups: int = 0
    confirmations: int = 0
    unsubscribes: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0


def daily(session: Session, start: datetime, end: datetime) -> list[DayRow]:
    """One row per UTC day of the period, days with nothing included as zeros."""
    table: dict[str, dict[str, int]] = defaultdict(dict)

    def collect(name: str, stmt) -> None:
        for day, count in session.execute(stmt).all():
            table[str(day)][name] = count

    names = {"article": "article_visits", "landing": "landing_visits"}
    for day, page, count in tallies.visits(session, start, end, "day", "page"):
        if page in names:
            table[day][names[page]] = count
    consents = {"signup": "signups", "confirm": "confirmations", "withdraw": "unsubscribes"}
    for day, *counts in people_by_day(session, tuple(consents), start, end):
        for name, count in zip(consents.values(), counts, strict=True):
            table[day][name] = count
    whole = tallies.whole_days(start, end)
    if whole is not None:
        for day, count in tallies.sent_by_day(session, *whole).items():
            table[day.isoformat()]["sent"] = count
    else:
        d = day_of(session, Delivery.sent_at).label("day")
        collect("sent", select(d, func.count()).where(Delivery.state.in_(SENT_STATES),
                                                      within(Delivery.sent_at, start, end))
                .group_by("day"))
    if whole is not None:
        for day, groups in email_tally.by_day(session, ("opened", "clicked"), *whole).items():
            table[day].update(groups)
        return [DayRow(day=day, **table.get(day.isoformat(), {})) for day in days_in(start, end)]
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


def people_by_day(session: Session, actions: Sequence[str], start: datetime, end: datetime
                  ) -> list[tuple[Any, ...]]:
    """(day, people with each action that day...) for the days of the period with any:
    from the kept cells for whole days, else in one pass over the period's records."""
    days = tallies.whole_days(start, end)
    if days is not None:
        return people_tally.by_day(session, actions, *days)
    d = day_of(session, ConsentRecord.at).label("day")
    return [(str(day), *(int(n) for n in counts)) for day, *counts in session.execute(
        select(d, *(func.count(func.distinct(ConsentRecord.subscriber_id))
                    .filter(ConsentRecord.action == action) for action in actions))
        .where(ConsentRecord.action.in_(actions), within(ConsentRecord.at, start, end))
        .group_by("day")
    ).all()]


# -- by source -------------------------------------------------------------------

@dataclass
class SourceRow:
    label: str
    article_visits: int = 0
    landing_visits: int = 0
    signups: int = 0
    confirmations: int = 0

    @property
    def visits(self) -> int:
        return self.article_visits + self.landing_visits

    @property
    def signup_rate(self) -> float | None:
        """Sign-ups per visit: visitors often read the article first, so both pages count."""
        return rate(self.signups, self.visits)

    @property
    def confirmation_rate(self) -> float | None:
        return rate(self.confirmations, self.signups)


def _host(url_or_host: str | None) -> str | None:
    if not url_or_host:
        return None
    text = url_or_host.strip()
    host = urlsplit(text).hostname if "//" in text else text.split("/")[0].split(":")[0]
    if not host:
        return None
    host = host.lower()
    return host.removeprefix("www.")


def source_label(utm_source: str | None, referrer: str | None,
                 own_hosts: Iterable[str] = ()) -> str:
    """UTM source when tagged, else the referring site, else direct.

    A referrer on our own site (the article leading to the landing page) is not
    a source: the visit that brought the person in is counted with its own.
    """
    if utm_source and utm_source.strip():
        return utm_source.strip().lower()
    host = _host(referrer)
    own = {_host(h) for h in own_hosts}
    if host is None or host in own:
        return DIRECT
    return host


@dataclass(frozen=True)
class Origin:
    """The period's people who signed up or confirmed, who came the same way."""

    utm_source: str | None
    referrer: str | None
    utm_medium: str | None
    utm_campaign: str | None
    arrived_via: str | None
    signups: int
    confirmations: int
    # Of those confirmations, the people with a sign-up record at all (imports have none).
    confirmations_signed_up: int


def people_by_origin(session: Session, start: datetime, end: datetime) -> list[Origin]:
    """Sign-ups and confirmations of the period, once per person, by where people came from.

    Whole UTC days are summed from the kept cells (funnel.reporting.people_tally), which carry
    each person's origin; other periods join the period's people with their subscriber
    rows once, for both "by source" and the two funnels."""
    days = tallies.whole_days(start, end)
    if days is not None:
        return [Origin(*row) for row in people_tally.by_origin(session, *days)]
    return people_by_origin_from_rows(session, start, end)


def people_by_origin_from_rows(session: Session, start: datetime, end: datetime
                               ) -> list[Origin]:
    """``people_by_origin`` counted from the consent records and subscribers (any period)."""
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


def by_source(session: Session, start: datetime, end: datetime, *, dimension: str = "source",
              own_hosts: Iterable[str] = (), origins: Sequence[Origin] | None = None
              ) -> list[SourceRow]:
    """Visits, sign-ups and confirmations grouped by source, medium or campaign.

    Ordered by sign-ups, then visits, most first. ``origins``: ``people_by_origin``
    for the same period when the caller already has it.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}")
    own_hosts = tuple(own_hosts)
    rows: dict[str, SourceRow] = {}

    def row(label: str) -> SourceRow:
        return rows.setdefault(label, SourceRow(label))

    def label_for(utm_source, referrer, medium, campaign) -> str:
        if dimension == "source":
            return source_label(utm_source, referrer, own_hosts)
        value = medium if dimension == "medium" else campaign
        return value.strip().lower() if value and value.strip() else NONE_LABEL

    visits = tallies.visits(session, start, end, "page", "utm_source", "referrer_host",
                            "utm_medium", "utm_campaign")
    for page, utm_source, referrer, medium, campaign, count in visits:
        r = row(label_for(utm_source, referrer, medium, campaign))
        if page == "article":
            r.article_visits += count
        elif page == "landing":
            r.landing_visits += count
    for o in people_by_origin(session, start, end) if origins is None else origins:
        r = row(label_for(o.utm_source, o.referrer, o.utm_medium, o.utm_campaign))
        r.signups += o.signups
        r.confirmations += o.confirmations
    return sorted(rows.values(), key=lambda r: (-r.signups, -r.visits, r.label))


# -- per step --------------------------------------------------------------------

@dataclass
class StepRow:
    slug: str
    subject: str = ""
    sent: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, group: str) -> int:
        return self.counts.get(group, 0)

    def rate(self, group: str) -> float | None:
        return rate(self.count(group), self.sent)

    @property
    def delivered(self) -> int:
        return self.count("delivered")

    @property
    def opened(self) -> int:
        return self.count("opened")

    @property
    def clicked(self) -> int:
        return self.count("clicked")

    @property
    def unsubscribed(self) -> int:
        return self.count("unsubscribed")

    @property
    def bounced(self) -> int:
        return self.count("bounced")

    @property
    def complained(self) -> int:
        return self.count("complained")


def per_step(session: Session, start: datetime, end: datetime, *,
             steps: Sequence[tuple[str, str]] = ()) -> list[StepRow]:
    """Engagement of the emails sent in the period, one row per step.

    ``steps`` is the current sequence as (slug, subject), in order: those rows
    come first even when nothing was sent; steps since removed follow.
    """
    rows: dict[str, StepRow] = {slug: StepRow(slug, subject) for slug, subject in steps}

    def row(slug: str) -> StepRow:
        return rows.setdefault(slug, StepRow(slug))

    days = tallies.whole_days(start, end)
    if days is not None:
        # Kept by triggers as mail is sent, events arrive and people unsubscribe
        # (funnel.reporting.tallies), for emails sent on those days.
        for slug, sums in tallies.steps(session, *days).items():
            r = row(slug)
            r.sent = sums.sent
            r.counts = {g: getattr(sums, g) for g in EVENT_GROUPS if getattr(sums, g)}
        for slug, count in tallies.unsubscribed_via_link(session, *days).items():
            r = row(slug)
            r.counts["unsubscribed"] = r.counts.get("unsubscribed", 0) + count
        return list(rows.values())
    return _per_step_raw(session, start, end, rows, row)


def _per_step_raw(session: Session, start: datetime, end: datetime, rows: dict[str, StepRow],
                  row) -> list[StepRow]:
    """per_step from the deliveries and events themselves (any period; the tallies' recount)."""
    # Confirmation and other system mail is not one of "the emails" people follow.
    sent_in_period = and_(Delivery.state.in_(SENT_STATES), within(Delivery.sent_at, start, end),
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
    for slug, count in _unsubscribes_per_step(session, sent_in_period):
        row(slug).counts["unsubscribed"] = count
    return list(rows.values())


def _via_link(later):
    """The delivery is the last email sent before the person unsubscribed through our link."""
    return and_(
        Subscriber.unsubscribed_at.is_not(None),
        Subscriber.unsubscribed_at >= Delivery.sent_at,
        ~exists().where(
            later.subscriber_id == Delivery.subscriber_id,
            later.state.in_(SENT_STATES),
            later.sent_at > Delivery.sent_at,
            later.sent_at <= Subscriber.unsubscribed_at,
        ),
    )


def _unsubscribes_per_step(session: Session, sent_in_period) -> list[tuple[str, int]]:
    later = aliased(Delivery)
    reported = exists().where(
        DeliveryEvent.delivery_id == Delivery.id,
        DeliveryEvent.kind.in_(EVENT_GROUPS["unsubscribed"]),
    )
    # Our own link: credited to the last email sent before the unsubscribe.
    via_link = _via_link(later)
    return [tuple(r) for r in session.execute(  # type: ignore[misc]
        select(Delivery.step_slug, func.count(func.distinct(Delivery.id)))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(sent_in_period, or_(reported, via_link))
        .group_by(Delivery.step_slug)
    ).all()]


# -- the list ---------------------------------------------------------------------

def status_counts(session: Session) -> dict[str, int]:
    """How many subscribers are in each status right now (kept by triggers)."""
    return tallies.status_counts(session)
