"""The figures kept by triggers in migration 0010 always equal a recount of the rows.

The dashboard's problems panel ("Emails that did not go out", with its Retry
counts) and every "once per person per period" figure (sign-ups, confirmations,
unsubscribes, imports, by source and the two funnels) read these kept figures for
whole UTC days. After each kind of change, here, they are compared with the same
figures counted from the rows: a kept figure that drifted would show the marketer
wrong numbers.
"""

from __future__ import annotations

import io
from csv import reader
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from funnel.control import failures
from funnel.importing.importer import import_rows
from funnel.models import ConsentRecord, Delivery, Subscriber
from funnel.reporting import insights, periods, stats, tallies
from funnel.subscribers import actions as cases
from funnel.subscribers import privacy
from tests import recount
from tests.conftest import press_confirm, sign_up, sign_up_and_confirm

ACTIONS = ("signup", "confirm", "withdraw", "import")


def panel(problems: list[failures.StepProblems]) -> list[tuple]:
    return [(p.slug, p.subject, p.failed, p.held, p.retryable, p.reasons) for p in problems]


def assert_problems_match(db) -> None:
    db.rollback()  # a fresh snapshot: other sessions made some of the changes
    subjects = {"lateral-hip-stretch": "Day 1"}
    assert panel(failures.by_step(db, subjects)) == panel(recount.problems(db, subjects))
    rows = dict(db.execute(select(Delivery.state, func.count())
                           .where(Delivery.state.in_(failures.PROBLEM_STATES))
                           .group_by(Delivery.state)).all())
    assert failures.counts(db) == {"failed": rows.get("failed", 0), "held": rows.get("held", 0)}
    db.rollback()  # the test writes next: not from this read's snapshot


def send(db, sub: Subscriber, slug: str, state: str, *, kind: str = "drip",
         error: str | None = None) -> Delivery:
    d = Delivery(subscriber_id=sub.id, kind=kind, step_slug=slug, state=state, attempts=1,
                 error=error, created_at=sub.created_at)
    db.add(d)
    db.commit()
    return d


def test_the_problems_panel_follows_sends_statuses_retries_and_erasure(app, db, clock,
                                                                      make_subscriber):
    ann, bob, cat = (make_subscriber(f"{n}@example.com") for n in ("ann", "bob", "cat"))
    dee = make_subscriber("dee@example.com", status="pending")
    send(db, ann, "lateral-hip-stretch", "failed", error="550  mailbox\nunavailable")
    send(db, bob, "lateral-hip-stretch", "failed", error="550 mailbox unavailable")
    send(db, cat, "lateral-hip-stretch", "held", error="the email does not render")
    send(db, ann, "step-two", "failed", error="timeout")
    # Confirmation emails carry a per-send suffix and are listed as one email.
    send(db, dee, "confirm-3f9a", "failed", kind="system", error="refused")
    send(db, dee, "confirm-77b2", "failed", kind="system", error="refused")
    send(db, cat, "step-two", "sent")
    assert_problems_match(db)
    shown = {p.slug: p for p in failures.by_step(db)}
    assert (shown["lateral-hip-stretch"].failed, shown["lateral-hip-stretch"].held,
            shown["lateral-hip-stretch"].retryable) == (2, 1, 2)
    assert shown["confirm"].failed == 2 and shown["confirm"].retryable == 0
    assert shown["lateral-hip-stretch"].reasons[0] == ("550 mailbox unavailable", 2)

    # The subscriber's status changes after the failure: no longer retryable.
    with app.extensions["funnel"].sessions() as s:
        cases.unsubscribe(s, s.get(Subscriber, bob.id), now=clock.now, reason="test")
    assert_problems_match(db)
    assert {p.slug: p.retryable for p in failures.by_step(db)}["lateral-hip-stretch"] == 1
    # A bulk change of statuses, both ways.
    db.execute(update(Subscriber).where(Subscriber.id.in_([bob.id, dee.id]))
               .values(status="confirmed"))
    db.commit()
    assert_problems_match(db)
    db.execute(update(Subscriber).where(Subscriber.id == ann.id).values(status="bounced"))
    db.commit()
    assert_problems_match(db)
    db.execute(update(Subscriber).where(Subscriber.id == ann.id).values(status="confirmed"))
    db.commit()

    # The marketer's retry takes failed sends out; a held one becomes failed.
    assert failures.retry(db, now=clock.now, step_slug="step-two") == 1
    assert_problems_match(db)
    db.execute(update(Delivery).where(Delivery.state == "held").values(state="failed",
                                                                       error="gave up"))
    db.commit()
    assert_problems_match(db)

    # Erasure through the ORM, and a subscriber deleted by a plain statement
    # (the database's own cascade removes the sends after the subscriber row).
    db.rollback()
    privacy.erase(db, db.get(Subscriber, ann.id), clock.now)
    assert_problems_match(db)
    db.execute(delete(Subscriber).where(Subscriber.id == cat.id))
    db.commit()
    assert_problems_match(db)
    db.execute(delete(Delivery).where(Delivery.kind == "system", Delivery.step_slug.like("%3f9a")))
    db.commit()
    assert_problems_match(db)

    before = panel(failures.by_step(db))
    db.rollback()  # compacting writes: a fresh transaction, not the reads' snapshot
    tallies.compact(db)
    db.commit()
    assert panel(failures.by_step(db)) == before
    assert_problems_match(db)


def test_the_dashboard_shows_the_kept_problems(app, logged_in, db, make_subscriber):
    eve = make_subscriber("eve@example.com")
    send(db, eve, "lateral-hip-stretch", "failed", error="refused")
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert 'data-failing-step="lateral-hip-stretch"' in page
    assert "Retry 1</button>" in page


# -- once per person per period --------------------------------------------------------

def windows(first, last):
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [(a, b) for i, a in enumerate(days) for b in days[i:]]


def people_figures(db, start, end) -> tuple:
    origins = sorted(stats.people_by_origin(db, start, end), key=repr)
    return (stats.people_by_action(db, ACTIONS, start, end),
            stats.people_by_day(db, ACTIONS, start, end), origins)


def people_recounted(db, start, end) -> tuple:
    origins = sorted(recount.people_by_origin(db, start, end), key=repr)
    return (recount.people_by_action(db, ACTIONS, start, end),
            recount.people_by_day(db, ACTIONS, start, end), origins)


def assert_windows_match(db, first, last, figures, recounted) -> None:
    """``figures`` for every whole-day period between first and last, from the kept
    cells, against the same period ``recounted`` from the rows."""
    db.rollback()
    for a, b in windows(first, last):
        start, end = periods.utc_day_bounds(a, b)
        assert figures(db, start, end) == recounted(db, start, end), (a, b)


def assert_people_match(db, first, last) -> None:
    """Every whole-day period between first and last, from the kept cells, against the
    same period a microsecond short (which is counted from the records)."""
    assert_windows_match(db, first, last, people_figures, people_recounted)
    start, end = periods.utc_day_bounds(first, last)
    assert sorted(stats.people_by_origin(db, start, end), key=repr) == sorted(
        recount.people_by_origin(db, start, end), key=repr)
    db.rollback()  # the test writes next: not from this read's snapshot


def test_people_once_per_period_follow_every_kind_of_change(app, client, db, outbox, clock):
    first = clock.now.date() - timedelta(days=2)
    last = first + timedelta(days=9)
    sign_up(client, "ann@example.com", utm_source="instagram", via="article")
    clock.advance(hours=1)
    sign_up(client, "ann@example.com")  # asked again the same day: one sign-up
    sign_up_and_confirm(client, outbox, "bob@example.com", utm_source="newsletter",
                        utm_medium="email")
    assert_people_match(db, first, last)
    clock.advance(days=1)
    sign_up(client, "ann@example.com")  # and the next day
    sign_up(client, "cat@example.com", referrer="https://www.google.com/search")
    assert_people_match(db, first, last)
    clock.advance(days=1)
    press_confirm(client, outbox.link(outbox.to("cat@example.com")[-1], "confirm"))
    with app.extensions["funnel"].sessions() as s:
        bob = s.scalar(select(Subscriber).where(Subscriber.email == "bob@example.com"))
        cases.unsubscribe(s, bob, now=clock.now, reason="test")
    assert_people_match(db, first, last)
    clock.advance(days=1)
    # Bob comes back from elsewhere: where he came from is now the new source, for
    # his earlier records too (as counting from his subscriber row says).
    sign_up_and_confirm(client, outbox, "bob@example.com", utm_source="google", via="direct")
    db.rollback()
    import_rows(db, [(2, {"email": "imp1@example.com"}), (3, {"email": "imp2@example.com"})],
                confirmed=True, now=clock.now)
    assert_people_match(db, first, last)
    db.rollback()
    cat = db.scalar(select(Subscriber).where(Subscriber.email == "cat@example.com"))
    ann = db.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
    # A record written late, before the person's others; one removed; one moved.
    db.add(ConsentRecord(subscriber_id=cat.id, action="signup", at=clock.now - timedelta(days=4)))
    db.commit()
    assert_people_match(db, first, last)
    middle = db.scalars(select(ConsentRecord.id).where(ConsentRecord.subscriber_id == ann.id)
                        .order_by(ConsentRecord.at)).all()[1]
    db.execute(delete(ConsentRecord).where(ConsentRecord.id == middle))
    db.execute(update(ConsentRecord).where(ConsentRecord.action == "withdraw")
               .values(at=clock.now + timedelta(days=2)))
    db.commit()
    assert_people_match(db, first, last)
    # Origins changed by a plain statement; a person deleted by one (the database's
    # cascade), another erased through the app.
    db.execute(update(Subscriber).where(Subscriber.email == "ann@example.com")
               .values(utm_source="tiktok", arrived_via="direct"))
    db.commit()
    assert_people_match(db, first, last)
    db.execute(delete(Subscriber).where(Subscriber.email == "imp1@example.com"))
    db.commit()
    db.rollback()
    privacy.erase(db, db.get(Subscriber, cat.id), clock.now)
    assert_people_match(db, first, last)
    db.rollback()  # compacting writes: a fresh transaction, not the reads' snapshot
    tallies.compact(db)
    db.commit()
    assert_people_match(db, first, last)

    start, end = periods.utc_day_bounds(first, last)
    counts = stats.funnel_counts(db, start, end)
    assert (counts.signups, counts.confirmations, counts.imported) == (2, 1, 1)
    article, direct = insights.funnels(db, start, end)
    assert article.stages[2].count + direct.stages[1].count == counts.signups


def test_the_sources_report_is_what_the_records_say(app, client, logged_in, db, outbox, clock):
    for i, source in enumerate(("instagram", "instagram", "newsletter", "")):
        sign_up_and_confirm(client, outbox, f"p{i}@example.com", utm_source=source)
        clock.advance(hours=1)
    day = clock.now.date()
    start, end = periods.utc_day_bounds(day - timedelta(days=6), day)
    csv = client.get(f"/admin/stats.csv?report=sources&from={day - timedelta(days=6)}&to={day}")
    assert csv.status_code == 200, csv.get_data(as_text=True)[:300]
    rows = list(reader(io.StringIO(csv.get_data(as_text=True))))[1:]
    expected = stats.by_source(db, start, end, own_hosts=["localhost"],
                               origins=recount.people_by_origin(db, start, end))
    assert {r[0]: (int(r[3]), int(r[4])) for r in rows} == {
        r.label: (r.signups, r.confirmations) for r in expected}
    assert {r[0]: int(r[3]) for r in rows}["instagram"] == 2


# -- emails with each kind of event, once per period -------------------------------------

def email_figures(db, start, end) -> tuple:
    return (stats.events_by_group(db, start, end), stats.daily(db, start, end),
            insights.clicks_per_link(db, start, end))


def email_recounted(db, start, end) -> tuple:
    return (recount.events_by_group(db, start, end), recount.daily(db, start, end),
            recount.clicks_per_link(db, start, end))


def assert_emails_match(db, first, last) -> None:
    assert_windows_match(db, first, last, email_figures, email_recounted)
    db.rollback()  # the test writes next: not from this read's snapshot


def webhook(app, delivery: Delivery, kind: str, event_id: str, at, **extra) -> None:
    from funnel.subscribers import provider_events

    with app.extensions["funnel"].sessions() as s:
        provider_events.record_events(s, [{
            "event": kind, "sg_event_id": event_id, "timestamp": int(at.timestamp()),
            "email": "x@example.com", "delivery_id": delivery.public_id, **extra}], at)


def test_emails_opened_and_clicked_per_period_follow_every_event(app, db, clock,
                                                                  make_subscriber):
    first = clock.now.date() - timedelta(days=1)
    last = first + timedelta(days=6)
    people = [make_subscriber(f"{n}@example.com") for n in ("ann", "bob", "cat")]
    sent = [send(db, p, "lateral-hip-stretch", "sent") for p in people]
    for d in sent:
        d.sent_at = clock.now
    db.commit()
    ann, bob, cat = sent
    webhook(app, ann, "open", "o1", clock.now)
    webhook(app, ann, "open", "o2", clock.now + timedelta(hours=2))  # the same day: one email
    webhook(app, ann, "click", "c1", clock.now, url="https://runstronger.example/a")
    webhook(app, bob, "delivered", "d1", clock.now)
    assert_emails_match(db, first, last)
    clock.advance(days=1)
    webhook(app, ann, "open", "o3", clock.now)  # the next day: once per period, once per day
    webhook(app, ann, "click", "c2", clock.now, url="https://runstronger.example/a")
    webhook(app, bob, "click", "c3", clock.now, url="https://runstronger.example/b")
    webhook(app, cat, "bounce", "b1", clock.now)
    webhook(app, cat, "spamreport", "s1", clock.now)
    webhook(app, bob, "unsubscribe", "u1", clock.now)
    assert_emails_match(db, first, last)
    # Written late, before the email's others; a click with no email we know.
    from funnel.models import DeliveryEvent

    db.add(DeliveryEvent(delivery_id=ann.id, kind="open", at=clock.now - timedelta(days=3)))
    db.add(DeliveryEvent(delivery_id=None, kind="click", step_slug="lateral-hip-stretch",
                         at=clock.now, detail="https://runstronger.example/a"))
    db.commit()
    assert_emails_match(db, first, last)
    # Events removed, moved and changed by plain statements; an email deleted with its
    # events; a subscriber erased with everything.
    db.execute(delete(DeliveryEvent).where(DeliveryEvent.provider_event_id == "o1"))
    db.execute(update(DeliveryEvent).where(DeliveryEvent.provider_event_id == "c3")
               .values(at=clock.now + timedelta(days=2)))
    db.execute(update(DeliveryEvent).where(DeliveryEvent.provider_event_id == "d1")
               .values(kind="open"))
    db.execute(update(DeliveryEvent).where(DeliveryEvent.delivery_id.is_(None))
               .values(at=clock.now + timedelta(days=1)))
    db.commit()
    assert_emails_match(db, first, last)
    db.execute(delete(Delivery).where(Delivery.id == cat.id))
    db.commit()
    db.rollback()
    privacy.erase(db, db.get(Subscriber, people[0].id), clock.now)
    assert_emails_match(db, first, last)
    db.rollback()
    tallies.compact(db)
    db.commit()
    assert_emails_match(db, first, last)
    start, end = periods.utc_day_bounds(first, last)
    clicks = insights.clicks_per_link(db, start, end)["lateral-hip-stretch"]
    assert [(c.url, c.clicks, c.people) for c in clicks] == [
        ("https://runstronger.example/a", 1, 0), ("https://runstronger.example/b", 1, 1)]


# -- unsubscribes through our own link, credited to the last email -----------------------

STEPS = [("lateral-hip-stretch", "Day 1"), ("hip-mobility", "Day 4")]


def assert_steps_match(db, first, last) -> None:
    db.rollback()
    for a, b in windows(first, last):
        start, end = periods.utc_day_bounds(a, b)
        kept = [(r.slug, r.sent, r.counts) for r in stats.per_step(db, start, end, steps=STEPS)]
        rows = [(r.slug, r.sent, r.counts) for r in recount.per_step(
            db, start, end, steps=STEPS)]
        assert kept == rows, (a, b)
    db.rollback()  # the test writes next: not from this read's snapshot


def test_unsubscribes_through_our_link_follow_sends_events_and_people(app, db, clock,
                                                                      make_subscriber):
    first = clock.now.date() - timedelta(days=1)
    last = first + timedelta(days=6)
    ann, bob, cat, dee = (make_subscriber(f"{n}@example.com") for n in ("ann", "bob", "cat", "dee"))

    def sent(sub, slug, at, kind="drip"):
        d = send(db, sub, slug, "sent", kind=kind)
        d.sent_at = at
        db.commit()
        return d

    day1, day2 = clock.now, clock.now + timedelta(days=2)
    for sub in (ann, bob, cat, dee):
        sent(sub, "lateral-hip-stretch", day1)
    ann_second = sent(ann, "hip-mobility", day2)
    sent(bob, "hip-mobility", day2)
    sent(bob, "step-three", day2)  # two emails at one moment: both credited
    sent(cat, "confirm-1a2b", day2, kind="system")  # system mail last: none credited
    assert_steps_match(db, first, last)

    def unsubscribe(sub, at):
        with app.extensions["funnel"].sessions() as s:
            cases.unsubscribe(s, s.get(Subscriber, sub.id), now=at, reason="link")

    for sub in (ann, bob, cat):
        unsubscribe(sub, day2 + timedelta(hours=1))
    unsubscribe(dee, day1 - timedelta(hours=1))  # before any email: nothing credited
    assert_steps_match(db, first, last)
    start, end = periods.utc_day_bounds(first, last)
    shown = {r.slug: r.unsubscribed for r in stats.per_step(db, start, end, steps=STEPS)}
    assert shown["hip-mobility"] == 2 and shown["lateral-hip-stretch"] == 0

    # The provider reports the unsubscribe for the credited email: counted once.
    webhook(app, ann_second, "unsubscribe", "u1", day2 + timedelta(hours=2))
    assert_steps_match(db, first, last)
    # A later email (sent after the unsubscribe) changes nothing; moving one before it does.
    late = sent(ann, "step-three", day2 + timedelta(days=1))
    assert_steps_match(db, first, last)
    db.execute(update(Delivery).where(Delivery.id == late.id).values(sent_at=day2))
    db.commit()
    assert_steps_match(db, first, last)
    db.execute(update(Delivery).where(Delivery.id == ann_second.id).values(state="failed"))
    db.execute(delete(Delivery).where(Delivery.subscriber_id == bob.id,
                                      Delivery.step_slug == "step-three"))
    db.commit()
    assert_steps_match(db, first, last)
    # Back on the list, a new unsubscribe time set by hand; then gone altogether.
    db.execute(update(Subscriber).where(Subscriber.id == bob.id)
               .values(unsubscribed_at=None, status="pending"))
    db.execute(update(Subscriber).where(Subscriber.id == cat.id)
               .values(unsubscribed_at=day1 + timedelta(hours=1)))
    db.commit()
    assert_steps_match(db, first, last)
    db.execute(delete(Subscriber).where(Subscriber.id == cat.id))
    db.commit()
    db.rollback()
    privacy.erase(db, db.get(Subscriber, ann.id), clock.now)
    assert_steps_match(db, first, last)
    db.rollback()
    tallies.compact(db)
    db.commit()
    assert_steps_match(db, first, last)
