"""The dashboard's statistics on a small data set whose every number is known."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber, Visit
from funnel.reporting import periods, stats

NOV = periods.utc_day_bounds(date(2026, 11, 1), date(2026, 11, 30))
STEPS = [("step-1", "Day 1"), ("step-2", "Part 2"), ("step-3", "Part 3")]


def t(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


class Builder:
    def __init__(self, db) -> None:
        self.db = db
        self.events = 0

    def visits(self, page: str, at: datetime, n: int, **fields) -> None:
        self.db.add_all(Visit(page=page, at=at, **fields) for _ in range(n))

    def person(self, email: str, signed_up: datetime, *, confirmed: datetime | None = None,
               status: str = "pending", action: str = "signup", **fields) -> Subscriber:
        sub = Subscriber(email=email, status=status, timezone="Europe/London",
                         created_at=signed_up, confirmed_at=confirmed, **fields)
        sub.consents.append(ConsentRecord(action=action, at=signed_up))
        if confirmed:
            sub.consents.append(ConsentRecord(action="confirm", at=confirmed))
        self.db.add(sub)
        return sub

    def sent(self, sub: Subscriber, slug: str, at: datetime, *events: tuple[str, datetime],
             state: str = "sent") -> Delivery:
        d = Delivery(step_slug=slug, state=state, created_at=at,
                     sent_at=at if state == "sent" else None)
        sub.deliveries.append(d)
        for kind, when in events:
            self.events += 1
            d.events.append(DeliveryEvent(kind=kind, at=when, step_slug=slug,
                                          provider_event_id=f"ev-{self.events}"))
        return d


@pytest.fixture
def known(db):
    """November 2026, with things just outside it that must not be counted."""
    b = Builder(db)
    b.visits("article", t(10, 31, 23, 59), 1)
    b.visits("article", t(12, 1, 0, 0), 1)  # the period ends at midnight, exclusive
    b.visits("article", t(11, 5, 9), 3, utm_source="facebook", utm_medium="social",
             utm_campaign="itb")
    b.visits("article", t(11, 5, 10), 4, referrer_host="google.com")
    b.visits("article", t(11, 5, 11), 3)
    b.visits("article", t(11, 6, 8), 5)
    b.visits("landing", t(11, 5, 9, 5), 2, utm_source="facebook", utm_medium="social",
             utm_campaign="itb")
    b.visits("landing", t(11, 5, 11, 5), 4)

    a = b.person("a@example.com", t(11, 5, 10), confirmed=t(11, 5, 10, 5), status="unsubscribed",
                 utm_source="Facebook", utm_medium="social", utm_campaign="itb",
                 unsubscribed_at=t(11, 9))
    # b asked for the confirmation email twice: still one sign-up.
    bee = b.person("b@example.com", t(11, 5, 11), referrer="http://localhost/")
    bee.consents.append(ConsentRecord(action="signup", at=t(11, 5, 11, 30)))
    c = b.person("c@example.com", t(11, 6, 8), confirmed=t(11, 7, 7), status="confirmed",
                 referrer="https://www.google.com/search?q=hip")
    d = b.person("d@example.com", t(10, 30), confirmed=t(11, 1, 9), status="unsubscribed",
                 utm_source="newsletter", unsubscribed_at=t(11, 3))
    d.consents.append(ConsentRecord(action="withdraw", at=t(11, 3)))
    e = b.person("e@example.com", t(11, 10), confirmed=t(11, 10), status="confirmed",
                 action="import")
    e.consents.pop()  # an import has no confirm record
    f = b.person("f@example.com", t(10, 1), confirmed=t(10, 1, 13), status="confirmed")

    b.sent(a, "step-1", t(11, 5, 10, 6), ("delivered", t(11, 5, 10, 7)),
           ("open", t(11, 5, 18)), ("open", t(11, 6, 7)), ("click", t(11, 6, 7, 1)))
    # The provider reported this unsubscribe, and a's unsubscribed_at follows it:
    # one unsubscribe, not two.
    b.sent(a, "step-2", t(11, 8, 9), ("delivered", t(11, 8, 9, 1)),
           ("unsubscribe", t(11, 9)))
    b.sent(c, "step-1", t(11, 7, 7, 1), ("delivered", t(11, 7, 7, 2)), ("open", t(11, 7, 20)))
    b.sent(c, "step-2", t(11, 10, 9), state="failed")
    # d unsubscribed through our own link two days after step 1.
    b.sent(d, "step-1", t(11, 1, 9, 1), ("delivered", t(11, 1, 9, 2)))
    b.sent(e, "retired-step", t(11, 12, 9), ("bounce", t(11, 12, 9, 1)))
    # Sent in October, opened in November: an open in November, not a November send.
    b.sent(f, "step-1", t(10, 1, 14), ("delivered", t(10, 1, 14, 1)), ("open", t(11, 2, 8)))
    db.commit()
    return db


def test_funnel_counts_a_known_month(known):
    c = stats.funnel_counts(known, *NOV)
    assert (c.article_visits, c.landing_visits) == (15, 6)
    assert (c.signups, c.confirmations, c.imported, c.unsubscribes) == (3, 3, 1, 1)
    assert c.sent == 5  # the failed send is not a send
    assert (c.delivered, c.opened, c.clicked, c.bounced) == (4, 3, 1, 1)
    assert [(k, n) for k, _label, n, _conv in c.stages] == [
        ("article_visits", 15), ("landing_visits", 6), ("signups", 3), ("confirmations", 3)]
    conversions = [conv for _k, _l, _n, conv in c.stages]
    assert conversions[0] is None
    assert conversions[1:] == [pytest.approx(6 / 15), pytest.approx(3 / 6), pytest.approx(1.0)]
    assert c.landing_to_signup == pytest.approx(0.5)


def test_an_empty_period_has_zeros_and_no_rates(known):
    empty = stats.funnel_counts(known, *periods.utc_day_bounds(date(2025, 1, 1), date(2025, 1, 31)))
    assert empty.signups == 0
    assert empty.landing_to_signup is None
    assert all(conv is None for _k, _l, _n, conv in empty.stages)


def test_daily_series_has_every_day_and_puts_each_count_on_its_day(known):
    days = stats.daily(known, *NOV)
    assert [d.day for d in days] == [date(2026, 11, n) for n in range(1, 31)]
    by_day = {d.day.day: d for d in days}
    assert (by_day[5].article_visits, by_day[5].landing_visits) == (10, 6)
    assert by_day[6].article_visits == 5
    assert (by_day[5].signups, by_day[6].signups) == (2, 1)
    assert [n for n in range(1, 31) if by_day[n].confirmations] == [1, 5, 7]
    assert by_day[3].unsubscribes == 1
    assert [n for n in range(1, 31) if by_day[n].sent] == [1, 5, 7, 8, 12]
    assert (by_day[2].opened, by_day[5].opened, by_day[6].opened, by_day[7].opened) == (1, 1, 1, 1)
    assert by_day[6].clicked == 1
    assert sum(d.signups for d in days) == 3


def test_per_step_follows_the_emails_sent_in_the_period(known):
    rows = stats.per_step(known, *NOV, steps=STEPS)
    assert [r.slug for r in rows] == ["step-1", "step-2", "step-3", "retired-step"]
    one, two, three, retired = rows
    assert one.subject == "Day 1"
    assert (one.sent, one.delivered, one.opened, one.clicked) == (3, 3, 2, 1)
    assert one.unsubscribed == 1  # d, through our link, credited to the last email before
    assert one.rate("opened") == pytest.approx(2 / 3)
    assert (two.sent, two.delivered, two.unsubscribed) == (1, 1, 1)
    assert (three.sent, three.rate("opened")) == (0, None)
    assert (retired.sent, retired.bounced, retired.delivered) == (1, 1, 0)


def test_by_source_merges_utm_and_referrers(known):
    rows = {r.label: r for r in stats.by_source(known, *NOV, own_hosts=["localhost"])}
    fb = rows["facebook"]
    assert (fb.article_visits, fb.landing_visits, fb.signups, fb.confirmations) == (3, 2, 1, 1)
    assert fb.signup_rate == pytest.approx(1 / 5)
    google = rows["google.com"]
    assert (google.article_visits, google.signups, google.confirmations) == (4, 1, 1)
    direct = rows[stats.DIRECT]
    # b came from our own article: a page of ours is not a source.
    assert (direct.article_visits, direct.landing_visits, direct.signups) == (8, 4, 1)
    assert (rows["newsletter"].signups, rows["newsletter"].confirmations) == (0, 1)
    assert set(rows) == {"facebook", "google.com", stats.DIRECT, "newsletter"}
    ordered = [r.label for r in stats.by_source(known, *NOV, own_hosts=["localhost"])]
    assert ordered[-1] == "newsletter"  # fewest sign-ups last


def test_by_campaign(known):
    rows = {r.label: r for r in stats.by_source(known, *NOV, dimension="campaign")}
    assert (rows["itb"].visits, rows["itb"].signups) == (5, 1)
    assert rows[stats.NONE_LABEL].signups == 2
    with pytest.raises(ValueError):
        stats.by_source(known, *NOV, dimension="ip")


def test_status_counts(known):
    assert stats.status_counts(known) == {"unsubscribed": 2, "pending": 1, "confirmed": 3}


def test_source_label_and_days():
    assert stats.source_label("  Twitter ", "https://google.com/") == "twitter"
    assert stats.source_label(None, "https://www.Strava.com/clubs/1") == "strava.com"
    assert stats.source_label(None, "runstronger.example", ["runstronger.example"]) == stats.DIRECT
    assert stats.source_label(None, None) == stats.DIRECT
    start, end = periods.utc_day_bounds(date(2026, 3, 28), date(2026, 3, 29))
    assert (end - start).days == 2
    assert periods.days_in(start, end) == [date(2026, 3, 28), date(2026, 3, 29)]
