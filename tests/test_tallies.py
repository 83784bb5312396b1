"""The counts kept by triggers (funnel.reporting.tallies) always equal a recount of the rows.

The dashboard's per-step figures and the list's counts per status read these
tallies instead of scanning the tables; a tally that drifted would show the
marketer wrong numbers, so each kind of change is followed by a recount.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import delete, func, select, update

from funnel.importing.importer import import_rows
from funnel.models import Delivery, DeliveryEvent, StatusTally, StepTally, Subscriber
from funnel.reporting import insights, periods, stats, tallies
from funnel.subscribers import actions as cases
from funnel.subscribers import privacy, provider_events
from tests import recount
from tests.conftest import sign_up, sign_up_and_confirm


def assert_tallies_match(db):
    db.rollback()  # a fresh snapshot: other sessions made the changes
    assert tallies.tallied(db) == tallies.recount(db)


def deliveries_of(db, email: str) -> list[Delivery]:
    return list(db.scalars(select(Delivery).join(Subscriber)
                           .where(Subscriber.email == email).order_by(Delivery.id)))


def provider_event(app, delivery: Delivery, kind: str, event_id: str, clock, **extra):
    with app.extensions["funnel"].sessions() as s:
        provider_events.record_events(s, [{
            "event": kind, "sg_event_id": event_id, "timestamp": int(clock.now.timestamp()),
            "email": "x@example.com", "delivery_id": delivery.public_id, **extra}], clock.now)


def test_every_kind_of_change_keeps_the_tallies_exact(app, client, db, outbox, clock,
                                                      run_worker):
    assert_tallies_match(db)
    sign_up(client, "pending@example.com")  # a sign-up and its confirmation email
    assert_tallies_match(db)
    assert tallies.status_counts(db) == {"pending": 1}
    for name in ("ann", "bob", "cat"):
        sign_up_and_confirm(client, outbox, f"{name}@example.com")
    assert_tallies_match(db)
    run_worker()  # the first step for each confirmed person
    assert_tallies_match(db)
    ann = deliveries_of(db, "ann@example.com")[-1]
    bob = deliveries_of(db, "bob@example.com")[-1]
    assert ann.state == "sent" and ann.kind == "drip"
    # Two opens of one email are one opened email; a click and a report unsubscribe too.
    provider_event(app, ann, "open", "e1", clock)
    provider_event(app, ann, "open", "e2", clock)
    provider_event(app, ann, "click", "e3", clock, url="https://runstronger.example/x")
    provider_event(app, bob, "delivered", "e4", clock)
    provider_event(app, bob, "bounce", "e5", clock)
    assert_tallies_match(db)
    day = clock.now.date()
    sums = tallies.steps(db, day, day)[ann.step_slug]
    assert (sums.sent, sums.opened, sums.clicked, sums.delivered, sums.bounced) == (3, 1, 1, 1, 1)
    with app.extensions["funnel"].sessions() as s:
        cat = s.scalar(select(Subscriber).where(Subscriber.email == "cat@example.com"))
        cases.unsubscribe(s, cat, now=clock.now, reason="test")
    assert_tallies_match(db)
    db.rollback()
    import_rows(db, [(2, {"email": "imp1@example.com"}), (3, {"email": "imp2@example.com"})],
                confirmed=True, now=clock.now)
    assert_tallies_match(db)
    clock.advance(days=3)
    run_worker()  # the next step, for those still on the list
    assert_tallies_match(db)
    db.rollback()
    privacy.erase(db, privacy.find_by_email(db, "ann@example.com"), clock.now)
    assert_tallies_match(db)
    # Bulk statements the ORM does not see: deleting events, changing a state.
    db.rollback()
    db.execute(delete(DeliveryEvent).where(DeliveryEvent.kind == "bounce"))
    db.execute(update(Delivery).where(Delivery.id == bob.id).values(state="failed"))
    db.commit()
    assert_tallies_match(db)
    counts = tallies.status_counts(db)
    assert counts == {"pending": 1, "confirmed": 2, "unsubscribed": 1, "bounced": 1}
    assert stats.status_counts(db) == counts


def test_compacting_folds_the_deltas_without_changing_a_sum(app, client, db, outbox, clock,
                                                            run_worker):
    for name in ("dee", "eve"):
        sign_up_and_confirm(client, outbox, f"{name}@example.com")
    run_worker()  # its pass folds what the sends wrote
    db.rollback()
    folded = tallies.tallied(db)
    assert db.scalar(select(func.count()).select_from(StepTally)) == len(folded[1])
    # Deltas written since: each email's day moved and back, one at a time.
    for d_id, sent_at in db.execute(select(Delivery.id, Delivery.sent_at)
                                    .where(Delivery.state == "sent")).all():
        for at in (sent_at - timedelta(days=1), sent_at):
            db.execute(update(Delivery).where(Delivery.id == d_id).values(sent_at=at))
    db.commit()
    before = tallies.tallied(db)
    assert before == folded
    assert db.scalar(select(func.count()).select_from(StepTally)) > len(folded[1])
    tallies.compact(db)
    db.commit()
    assert tallies.tallied(db) == before
    assert db.scalar(select(func.count()).select_from(StatusTally)) == 1  # confirmed: 2
    assert db.scalar(select(func.count()).select_from(StepTally)) == len(before[1])
    sign_up(client, "fay@example.com")  # deltas after a compaction still count
    assert_tallies_match(db)


def test_the_dashboard_reads_the_tallies_and_says_what_the_rows_say(app, client, db, outbox,
                                                                    clock, run_worker):
    for name in ("gil", "hal", "ida"):
        sign_up_and_confirm(client, outbox, f"{name}@example.com")
    run_worker()
    gil = deliveries_of(db, "gil@example.com")[-1]
    provider_event(app, gil, "open", "o1", clock)
    provider_event(app, gil, "unsubscribe", "u1", clock)
    # Hal unsubscribes through our own link: credited to the last email he got.
    with app.extensions["funnel"].sessions() as s:
        hal = s.scalar(select(Subscriber).where(Subscriber.email == "hal@example.com"))
        cases.unsubscribe(s, hal, now=clock.now + timedelta(hours=1), reason="link")
    steps = [("lateral-hip-stretch", "Day 1")]
    db.rollback()
    start, end = periods.utc_day_bounds(clock.now.date() - timedelta(days=2), clock.now.date())
    from_tallies = stats.per_step(db, start, end, steps=steps)
    from_rows = recount.per_step(db, start, end, steps=steps)
    assert [(r.slug, r.sent, r.counts) for r in from_tallies] == [
        (r.slug, r.sent, r.counts) for r in from_rows]
    assert from_tallies[0].sent == 3
    assert from_tallies[0].unsubscribed == 2 and from_tallies[0].opened == 1
    assert stats.funnel_counts(db, start, end).sent == recount.sent(db, start, end)
    people = dict(db.execute(
        select(Delivery.step_slug, func.count(func.distinct(Delivery.subscriber_id)))
        .where(Delivery.state == "sent").group_by(Delivery.step_slug)).all())
    reach = insights.reach(db, steps)
    assert {r.slug: r.people for r in reach} == people
    assert reach[0].people == 3
    page = client.get("/admin/").status_code
    assert page in (200, 302)


def test_whole_days():
    from datetime import UTC, datetime

    start, end = periods.utc_day_bounds(date(2026, 11, 1), date(2026, 11, 30))
    assert tallies.whole_days(start, end) == (date(2026, 11, 1), date(2026, 11, 30))
    # A period that ends inside a day counts that whole day: figures are kept per day.
    assert tallies.whole_days(start, datetime(2026, 11, 5, 9, tzinfo=UTC)) == (
        date(2026, 11, 1), date(2026, 11, 5))
    first, last = tallies.whole_days(end, start)
    assert first > last  # an empty period covers no day


def test_visit_tallies_follow_inserts_changes_and_deletes(db, clock):
    from sqlalchemy import insert

    from funnel.models import Visit

    day = clock.now.replace(hour=10, minute=0, second=0, microsecond=0)
    db.execute(insert(Visit), [
        {"page": "article", "at": day, "referrer_host": "www.google.com"},
        {"page": "landing", "at": day + timedelta(minutes=1), "via": "article"},
        {"page": "landing", "at": day + timedelta(days=1), "via": "direct",
         "utm_source": "instagram", "utm_medium": "social"},
        {"page": "landing", "at": day + timedelta(days=1, hours=1), "via": "direct",
         "utm_source": "instagram", "utm_medium": "social"},
    ])
    db.add(Visit(page="article", at=day - timedelta(days=1), utm_campaign="spring"))
    db.commit()
    db.execute(update(Visit).where(Visit.via == "article").values(at=day + timedelta(days=1)))
    db.execute(delete(Visit).where(Visit.referrer_host == "www.google.com"))
    db.commit()
    start, end = periods.utc_day_bounds(day.date() - timedelta(days=3), day.date() + timedelta(days=3))
    keys = ("day", "page", "via", "referrer_host", "utm_source", "utm_medium", "utm_campaign")
    rows = sorted(recount.visits(db, start, end, *keys), key=str)
    assert sorted(tallies.visits(db, start, end, *keys), key=str) == rows
    assert sum(r[-1] for r in rows) == 4
    tallies.compact(db)
    db.commit()
    assert sorted(tallies.visits(db, start, end, *keys), key=str) == rows
    assert stats.funnel_counts(db, start, end).landing_visits == 3
