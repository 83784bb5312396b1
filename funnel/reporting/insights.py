"""The dashboard's newer questions: two funnels, net growth, reach per step, clicks per link.

No Flask in here; every function takes a session and a half-open period
``[start, end)`` like ``funnel.reporting.stats``.

- **Two funnels.** People reach the landing page from the article *or* directly
  (a shared link, a bookmark). One funnel over both showed the landing page at
  185% of the article. Here each arrival path is its own funnel, so each stage
  counts a subset of the one before: the article path is article visits →
  landing visits through the article's link → sign-ups made there →
  their confirmations; the direct path starts at the landing page. A landing
  visit is "through the article" when it followed the article's link (the link
  carries ``via=article``); a sign-up is, when it was made on such a visit.
- **Net growth** per day is confirmations minus people lost: unsubscribes (a
  withdrawal record), bounces and spam complaints (provider events on sequence
  emails). Imports are shown apart, never as growth from the funnel.
- **Reach** is how many people have ever been sent each step (all time).
- **Clicks per link** come from the provider's click events, which keep the URL
  clicked (personal tokens removed, see ``funnel.subscribers.provider_events``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.models import Delivery, DeliveryEvent
from funnel.reporting import email_tally, tallies
from funnel.reporting.periods import day_of, days_in, rate, within
from funnel.reporting.stats import (
    Origin,
    people_by_day,
    people_by_origin,
)

ARTICLE = "article"
DIRECT = "direct"
SENT = "sent"
UNREPORTED_LINK = "(link not reported)"
LOSS_KINDS = {"bounced": ("bounce", "dropped"), "complained": ("spamreport",)}


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    count: int
    conversion: float | None  # of the stage before; None for the first


@dataclass(frozen=True)
class PathFunnel:
    path: str  # article or direct
    title: str
    stages: tuple[Stage, ...]


def _stages(rows: Sequence[tuple[str, str, int]]) -> tuple[Stage, ...]:
    out: list[Stage] = []
    previous: int | None = None
    for key, label, count in rows:
        out.append(Stage(key, label, count, None if previous is None else rate(count, previous)))
        previous = count
    return tuple(out)


def funnels(session: Session, start: datetime, end: datetime,
            origins: Sequence[Origin] | None = None) -> tuple[PathFunnel, PathFunnel]:
    """The article funnel and the direct funnel for the period (``origins``:
    ``funnel.stats.people_by_origin`` for the same period, when already read)."""
    visits: dict[str, int] = defaultdict(int)
    article_visits = 0
    for page, via, n in tallies.visits(session, start, end, "page", "via"):
        if page == "landing":
            visits[ARTICLE if via == ARTICLE else DIRECT] += n
        elif page == "article":
            article_visits += n

    signups: dict[str, int] = defaultdict(int)
    confirmations: dict[str, int] = defaultdict(int)
    for o in people_by_origin(session, start, end) if origins is None else origins:
        path = ARTICLE if o.arrived_via == ARTICLE else DIRECT
        signups[path] += o.signups
        # Only people who signed up through the form: imports never came this way.
        confirmations[path] += o.confirmations_signed_up
    article = PathFunnel(ARTICLE, "From the article", _stages([
        ("article_visits", "Article visits", article_visits),
        ("landing_visits", "Went on to the landing page", visits.get(ARTICLE, 0)),
        ("signups", "Signed up", signups.get(ARTICLE, 0)),
        ("confirmations", "Confirmed", confirmations.get(ARTICLE, 0)),
    ]))
    direct = PathFunnel(DIRECT, "Straight to the landing page", _stages([
        ("landing_visits", "Landing page visits", visits.get(DIRECT, 0)),
        ("signups", "Signed up", signups.get(DIRECT, 0)),
        ("confirmations", "Confirmed", confirmations.get(DIRECT, 0)),
    ]))
    return article, direct


# -- net growth -------------------------------------------------------------------

@dataclass(frozen=True)
class GrowthDay:
    day: date
    confirmations: int = 0
    unsubscribes: int = 0
    bounced: int = 0
    complained: int = 0
    imported: int = 0

    @property
    def lost(self) -> int:
        return self.unsubscribes + self.bounced + self.complained

    @property
    def net(self) -> int:
        return self.confirmations - self.lost


def growth(session: Session, start: datetime, end: datetime) -> list[GrowthDay]:
    """One row per UTC day of the period: who joined the list and who left it."""
    table: dict[str, dict[str, int]] = defaultdict(dict)
    consents = {"confirm": "confirmations", "withdraw": "unsubscribes", "import": "imported"}
    for day, *counts in people_by_day(session, tuple(consents), start, end):
        for name, n in zip(consents.values(), counts, strict=True):
            table[day][name] = n
    d = day_of(session, DeliveryEvent.at).label("day")
    for day, *counts in session.execute(
        select(d, *(func.count(func.distinct(Delivery.subscriber_id))
                    .filter(DeliveryEvent.kind.in_(kinds)) for kinds in LOSS_KINDS.values()))
        .join(Delivery, Delivery.id == DeliveryEvent.delivery_id)
        .where(DeliveryEvent.kind.in_([k for kinds in LOSS_KINDS.values() for k in kinds]),
               within(DeliveryEvent.at, start, end))
        .group_by("day")
    ).all():
        for name, n in zip(LOSS_KINDS, counts, strict=True):
            table[str(day)][name] = n
    return [GrowthDay(day=day, **table.get(day.isoformat(), {})) for day in days_in(start, end)]


# -- reach per step ------------------------------------------------------------------

@dataclass(frozen=True)
class Reach:
    slug: str
    subject: str
    people: int


def reach(session: Session, steps: Sequence[tuple[str, str]]) -> list[Reach]:
    """How many people have been sent each step of the plan, ever, in plan order.

    From the tallies: a person has at most one delivery per kind and step
    (uq_delivery_subscriber_kind_step), so sent emails of a step are its people.
    """
    got: dict[str, int] = defaultdict(int)
    for (_kind, slug), n in tallies.sent_ever(session).items():
        got[slug] += n
    out = [Reach(slug, subject, got.pop(slug, 0)) for slug, subject in steps]
    out += [Reach(slug, "", n) for slug, n in sorted(got.items())]  # steps since removed
    return out


# -- clicks per link -----------------------------------------------------------------

@dataclass(frozen=True)
class LinkClicks:
    slug: str
    url: str
    clicks: int  # every click event
    people: int  # distinct emails clicked


def clicks_per_link(session: Session, start: datetime, end: datetime
                    ) -> dict[str, list[LinkClicks]]:
    """For each email, its links by clicks in the period, most clicked first
    (whole UTC days from the cells kept by triggers, funnel.reporting.email_tally)."""
    rows = email_tally.links(session, *tallies.whole_days(start, end))
    out: dict[str, list[LinkClicks]] = defaultdict(list)
    for slug, link, clicks, people in rows:
        out[str(slug)].append(LinkClicks(str(slug), link, clicks, people))
    return {slug: sorted(links, key=lambda c: (-c.clicks, c.url)) for slug, links in out.items()}
