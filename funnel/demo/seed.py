"""A realistic month of made-up activity, for trying the dashboard. No Flask in here.

Visitors arrive from a handful of sources, read the article, some go on to the
landing page, some sign up, most confirm, and confirmed people are sent the
sequence on the real schedule (``core.schedule``) with deliveries, opens,
clicks, the odd bounce and unsubscribe. Every address is at example.com,
example.org or example.net, domains reserved so mail to them goes nowhere.

``seed`` returns what it generated, so a test can check the dashboard against
the generator's own tally rather than against the statistics code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from funnel.config import Settings
from funnel.core import lifecycle
from funnel.core.schedule import due_at, zone
from funnel.core.sequence import Sequence
from funnel.core.states import ConsentAction
from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber, Visit, new_public_id
from funnel.subscribers import actions as subscribers

# (utm_source, utm_medium, utm_campaign, referrer host, share of visits, sign-up appetite)
SOURCES: tuple[tuple[str | None, str | None, str | None, str | None, float, float], ...] = (
    (None, None, None, "google.com", 0.34, 1.0),
    (None, None, None, None, 0.14, 0.8),
    ("facebook", "social", "itb-stretch", None, 0.16, 0.7),
    ("instagram", "social", "itb-stretch", None, 0.10, 0.6),
    ("runnersweekly", "email", "december-issue", None, 0.09, 1.6),
    (None, None, None, "strava.com", 0.09, 1.2),
    (None, None, None, "reddit.com", 0.08, 0.5),
)
FIRST_NAMES = ("Alex", "Sam", "Jo", "Priya", "Tom", "Aisha", "Ben", "Chloe", "Dan", "Ella",
               "Femi", "Grace", "Hannah", "Imran", "Jack", "Kate", "Liam", "Maya", "Niamh",
               "Owen", "Rosa", "Sofia", "Theo", "Zara", "Marta", "Luca", "Yuki", "Noah")
LAST_NAMES = ("smith", "jones", "patel", "brown", "wilson", "khan", "evans", "taylor",
              "murphy", "okafor", "garcia", "nguyen", "walker", "hughes", "rossi")
DOMAINS = ("example.com", "example.org", "example.net")
ZONES = (("Europe/London", 0.7), ("Europe/Dublin", 0.08), ("Europe/Berlin", 0.08),
         ("America/New_York", 0.08), ("Australia/Sydney", 0.06))
BASE_ARTICLE_VISITS = 420  # a weekday at scale 1
ARTICLE_TO_LANDING = 0.34
DIRECT_LANDING_SHARE = 0.12  # landing visits that skip the article, per article visit
LANDING_TO_SIGNUP = 0.27
SIGNUP_TO_CONFIRM = 0.74
BOUNCE = 0.012
COMPLAINT = 0.004  # of opened emails


class AlreadySeeded(RuntimeError):
    """The database already has a list; demo data would be mixed into it."""


@dataclass
class SeedReport:
    """What was generated, counted the way the dashboard counts it."""

    start: datetime
    end: datetime
    article_visits: int = 0
    landing_visits: int = 0
    signups: int = 0
    confirmations: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    per_step_sent: dict[str, int] = field(default_factory=dict)


@dataclass
class _Person:
    email: str
    first_name: str
    tz: str
    created_at: datetime
    source: tuple[Any, ...]
    referrer: str | None
    confirmed_at: datetime | None = None
    status: str = lifecycle.PENDING
    status_reason: str | None = None
    unsubscribed_at: datetime | None = None
    next_due_at: datetime | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    via: str = "direct"


def _pick(rng: random.Random, weighted):
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def seed(session: Session, *, now: datetime, settings: Settings, sequence: Sequence,
         days: int = 30, scale: float = 1.0, seed: int = 2026) -> SeedReport:
    """Fill an empty database with ``days`` whole UTC days of activity up to ``now``.

    Raises AlreadySeeded when there are subscribers or visits already.
    """
    if session.scalar(select(func.count()).select_from(Subscriber)) or session.scalar(
            select(func.count()).select_from(Visit)):
        raise AlreadySeeded("the database already has subscribers or visits; demo data is "
                            "only added to an empty database")
    rng = random.Random(seed)
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    report = SeedReport(start=start, end=now)
    visits: list[dict[str, Any]] = []
    people: list[_Person] = []
    source_weights = [(s, s[4]) for s in SOURCES]

    for day_index in range(days):
        day = start + timedelta(days=day_index)
        weekend = day.weekday() >= 5
        growth = 0.8 + 0.4 * day_index / max(days - 1, 1)  # the article is catching on
        expected = BASE_ARTICLE_VISITS * scale * growth * (1.25 if weekend else 1.0)
        for _ in range(max(0, round(rng.gauss(expected, expected ** 0.5)))):
            at = _time_of_day(rng, day)
            if at >= now:
                continue
            src = _pick(rng, source_weights)
            visits.append(_visit("article", at, src))
            if rng.random() < ARTICLE_TO_LANDING:
                landing_at = at + timedelta(seconds=rng.randint(40, 600))
                if landing_at < now:
                    # From the article the referrer is our own page: only UTM carries through.
                    visits.append(_visit("landing", landing_at, src, via_article=True))
                    _maybe_sign_up(rng, people, landing_at, src, now, settings, via_article=True)
            if rng.random() < DIRECT_LANDING_SHARE:
                landing_at = _time_of_day(rng, day)
                if landing_at < now:
                    visits.append(_visit("landing", landing_at, src))
                    _maybe_sign_up(rng, people, landing_at, src, now, settings,
                                   via_article=False)

    events: list[dict[str, Any]] = []
    consents: list[tuple[_Person, dict[str, Any]]] = []
    for person in people:
        consents.append((person, {"action": ConsentAction.SIGNUP, "at": person.created_at,
                                  "text_version": subscribers.CONSENT_VERSION,
                                  "text": subscribers.CONSENT_TEXT, "page": "/free-plan",
                                  "user_agent": "Mozilla/5.0 (demo data)"}))
        if person.confirmed_at is not None:
            consents.append((person, {"action": ConsentAction.CONFIRM, "at": person.confirmed_at,
                                      "text_version": subscribers.CONSENT_VERSION}))
            _send_sequence(rng, person, sequence, settings, now, events, consents)

    visits.sort(key=lambda v: v["at"])
    _insert(session, Visit, visits)
    ids = _insert_people(session, people)
    _insert(session, ConsentRecord, [{**c, "subscriber_id": ids[p.email]} for p, c in consents])
    deliveries = [{**d["row"], "subscriber_id": ids[p.email]} for p in people for d in p.deliveries]
    _insert(session, Delivery, deliveries)
    delivery_ids = dict(session.execute(
        select(Delivery.public_id, Delivery.id)).all()) if deliveries else {}
    _insert(session, DeliveryEvent, [
        {**{k: v for k, v in e.items() if k != "delivery"}, "delivery_id": delivery_ids[e["delivery"]]}
        for e in events
    ])
    session.commit()

    report.article_visits = sum(v["page"] == "article" for v in visits)
    report.landing_visits = sum(v["page"] == "landing" for v in visits)
    report.signups = len(people)
    report.confirmations = sum(p.confirmed_at is not None for p in people)
    for p in people:
        for d in p.deliveries:
            report.sent += 1
            slug = d["row"]["step_slug"]
            report.per_step_sent[slug] = report.per_step_sent.get(slug, 0) + 1
    delivery_kinds: dict[str, set[str]] = {}
    for e in events:
        delivery_kinds.setdefault(e["kind"], set()).add(e["delivery"])
    report.delivered = len(delivery_kinds.get("delivered", ()))
    report.opened = len(delivery_kinds.get("open", ()))
    report.clicked = len(delivery_kinds.get("click", ()))
    report.bounced = len(delivery_kinds.get("bounce", ()))
    report.unsubscribed = sum(p.status == lifecycle.UNSUBSCRIBED for p in people)
    return report


def _time_of_day(rng: random.Random, day: datetime) -> datetime:
    # Reading peaks in the evening, with a smaller morning bump.
    hour = min(23.99, max(0.0, rng.gauss(19, 3.5) if rng.random() < 0.7 else rng.gauss(8, 2)))
    return day + timedelta(hours=hour)


def _visit(page: str, at: datetime, src: tuple[Any, ...], via_article: bool = False
           ) -> dict[str, Any]:
    utm_source, utm_medium, utm_campaign, host = src[:4]
    return {"page": page, "at": at, "referrer_host": None if via_article else host,
            "via": ("article" if via_article else "direct") if page == "landing" else None,
            "utm_source": utm_source, "utm_medium": utm_medium, "utm_campaign": utm_campaign}


def _maybe_sign_up(rng: random.Random, people: list[_Person], at: datetime,
                   src: tuple[Any, ...], now: datetime, settings: Settings, *,
                   via_article: bool) -> None:
    if rng.random() >= LANDING_TO_SIGNUP * src[5]:
        return
    signed_up = at + timedelta(seconds=rng.randint(20, 240))
    if signed_up >= now:
        return
    first = rng.choice(FIRST_NAMES)
    n = len(people) + 1
    email = f"{first.lower()}.{rng.choice(LAST_NAMES)}{n}@{rng.choice(DOMAINS)}"
    host = src[3]
    referrer = (settings.base_url + "/" if via_article
                else f"https://{host}/" if host else None)
    person = _Person(email=email, first_name=first, tz=_pick(rng, ZONES), created_at=signed_up,
                     source=src, referrer=referrer,
                     via="article" if via_article else "direct")
    if rng.random() < SIGNUP_TO_CONFIRM:
        # Most confirm within minutes; some the next morning.
        delay = timedelta(minutes=rng.expovariate(1 / 8)) if rng.random() < 0.8 else \
            timedelta(hours=rng.uniform(6, 30))
        if signed_up + delay < now:
            person.confirmed_at = signed_up + delay
            person.status = lifecycle.CONFIRMED
    people.append(person)


def _send_sequence(rng: random.Random, person: _Person, sequence: Sequence, settings: Settings,
                   now: datetime, events: list[dict[str, Any]],
                   consents: list[tuple[_Person, dict[str, Any]]]) -> None:
    """Play the worker: each step at its due time, until the person stops or time runs out."""
    tz = zone(person.tz, settings.default_timezone)
    window = (settings.window_start, settings.window_end)
    min_gap = timedelta(hours=settings.catchup_min_gap_hours)
    assert person.confirmed_at is not None
    last: datetime | None = None
    for position, step in enumerate(sequence.steps):
        due = due_at(step, confirmed_at=person.confirmed_at, last_sent_at=last, tz=tz,
                     default_window=window, min_gap=min_gap)
        sent_at = due + timedelta(seconds=rng.randint(5, 90))  # the worker's poll interval
        if sent_at >= now:
            person.next_due_at = due
            return
        public_id = new_public_id()
        person.deliveries.append({"row": {
            "public_id": public_id, "step_slug": step.slug, "state": "sent", "attempts": 1,
            "message_id": f"<{public_id}@demo.invalid>", "created_at": due, "sent_at": sent_at,
        }})
        last = sent_at

        def event(kind: str, at: datetime, detail: str | None = None, *,
                  public_id: str = public_id, slug: str = step.slug) -> None:
            if at < now:
                events.append({"delivery": public_id, "kind": kind, "step_slug": slug,
                               "at": at, "detail": detail,
                               "provider_event_id": f"demo-{len(events) + 1}"})

        if rng.random() < BOUNCE:
            event("bounce", sent_at + timedelta(seconds=30), "bounce 550 mailbox unavailable")
            person.status, person.status_reason = lifecycle.BOUNCED, "SendGrid bounce (demo)"
            return
        event("delivered", sent_at + timedelta(seconds=rng.randint(2, 40)))
        # Interest fades along the sequence, as it does.
        if rng.random() < 0.62 - 0.03 * position:
            opened = sent_at + timedelta(minutes=rng.expovariate(1 / 240))
            event("open", opened)
            if rng.random() < 0.3:
                event("click", opened + timedelta(seconds=rng.randint(5, 300)),
                      f"{settings.base_url}/")
            if rng.random() < COMPLAINT:
                event("spamreport", opened + timedelta(minutes=1))
                person.status, person.status_reason = lifecycle.COMPLAINED, "SendGrid spamreport"
                return
        if rng.random() < 0.012 + 0.004 * position:
            unsub_at = sent_at + timedelta(hours=rng.uniform(0.2, 30))
            if unsub_at < now:
                # Through our own unsubscribe link: the provider never hears of it.
                person.status = lifecycle.UNSUBSCRIBED
                person.status_reason = "one-click"
                person.unsubscribed_at = unsub_at
                consents.append((person, {"action": ConsentAction.WITHDRAW, "at": unsub_at,
                                          "text": "one-click"}))
                return
    person.next_due_at = None  # the whole sequence went out


def _insert(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 2000):
        session.execute(insert(model), rows[i:i + 2000])


def _insert_people(session: Session, people: list[_Person]) -> dict[str, int]:
    ids: dict[str, int] = {}
    rows = [{
        "public_id": new_public_id(), "email": p.email, "first_name": p.first_name,
        "status": p.status, "status_reason": p.status_reason, "timezone": p.tz,
        "referrer": p.referrer, "landing_page": "/free-plan", "arrived_via": p.via,
        "utm_source": p.source[0], "utm_medium": p.source[1], "utm_campaign": p.source[2],
        "created_at": p.created_at, "confirm_sent_at": p.created_at,
        "confirmed_at": p.confirmed_at, "unsubscribed_at": p.unsubscribed_at,
        "next_due_at": p.next_due_at if p.status == lifecycle.CONFIRMED else None,
    } for p in people]
    for i in range(0, len(rows), 2000):
        ids.update(session.execute(
            insert(Subscriber).returning(Subscriber.email, Subscriber.id), rows[i:i + 2000]
        ).all())
    return ids
