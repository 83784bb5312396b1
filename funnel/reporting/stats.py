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
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from funnel.core.states import ConsentAction
from funnel.reporting import email_tally, figures, people_tally, tallies
from funnel.reporting.periods import days_in, rate, utc_day_bounds

# Provider event kinds grouped into what the marketer reads (declared in figures).
EVENT_GROUPS = figures.EVENT_GROUPS
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


def people_by_action(session: Session, actions: Sequence[str], start: datetime, end: datetime
                      ) -> dict[str, int]:
    """People with a consent record of each action in the period, once per person.

    From the cells kept by triggers (funnel.reporting.people_tally)."""
    return people_tally.by_action(session, actions, *tallies.whole_days(start, end))


def events_by_group(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Sequence emails with each kind of event in the period (opened twice is one open).

    Events for the confirmation email have no delivery and are left out here: the
    funnel counts them as confirmations, and a bounce shows in the list's statuses.
    From the cells kept by triggers (funnel.reporting.email_tally).
    """
    kept = email_tally.by_group(session, *tallies.whole_days(start, end))
    return {group: kept.get(group, 0) for group in EVENT_GROUPS}


def funnel_counts(session: Session, start: datetime, end: datetime) -> FunnelCounts:
    visits = dict(tallies.visits(session, start, end, "page"))
    sent = sum(tallies.sent_by_day(session, *tallies.whole_days(start, end)).values())
    events = events_by_group(session, start, end)
    people = people_by_action(session, ("signup", "confirm", "import", "withdraw"), start, end)
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

    names = {"article": "article_visits", "landing": "landing_visits"}
    for day, page, count in tallies.visits(session, start, end, "day", "page"):
        if page in names:
            table[day][names[page]] = count
    consents = {"signup": "signups", "confirm": "confirmations", "withdraw": "unsubscribes"}
    for day, *counts in people_by_day(session, tuple(consents), start, end):
        for name, count in zip(consents.values(), counts, strict=True):
            table[day][name] = count
    whole = tallies.whole_days(start, end)
    for day, count in tallies.sent_by_day(session, *whole).items():
        table[day.isoformat()]["sent"] = count
    for day, groups in email_tally.by_day(session, ("opened", "clicked"), *whole).items():
        table[day].update(groups)
    return [DayRow(day=day, **table.get(day.isoformat(), {})) for day in days_in(start, end)]


def people_by_day(session: Session, actions: Sequence[str], start: datetime, end: datetime
                  ) -> list[tuple[Any, ...]]:
    """(day, people with each action that day...) for the days of the period with any,
    from the kept cells."""
    return people_tally.by_day(session, actions, *tallies.whole_days(start, end))


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

    Summed from the kept cells (funnel.reporting.people_tally), which carry each
    person's origin, for both "by source" and the two funnels."""
    return [Origin(*row) for row in people_tally.by_origin(session,
                                                            *tallies.whole_days(start, end))]


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

    # Kept by triggers as mail is sent, events arrive and people unsubscribe
    # (funnel.reporting.tallies), for emails sent on those days.
    days = tallies.whole_days(start, end)
    for slug, sums in tallies.steps(session, *days).items():
        r = row(slug)
        r.sent = sums.sent
        r.counts = {g: getattr(sums, g) for g in EVENT_GROUPS if getattr(sums, g)}
    for slug, count in tallies.unsubscribed_via_link(session, *days).items():
        r = row(slug)
        r.counts["unsubscribed"] = r.counts.get("unsubscribed", 0) + count
    return list(rows.values())


# -- the list ---------------------------------------------------------------------

def last_days(session: Session, days: int, today: date) -> dict[str, int]:
    """People with each consent action in the ``days`` whole UTC days up to ``today``
    (the API's "last 30 days"), from the kept cells."""
    actions = tuple(str(a) for a in ConsentAction)
    return people_by_action(session, actions, *utc_day_bounds(today - timedelta(days=days - 1),
                                                                today))


def status_counts(session: Session) -> dict[str, int]:
    """How many subscribers are in each status right now (kept by triggers)."""
    return tallies.status_counts(session)
