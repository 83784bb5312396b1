"""Subject tests: a random sample split evenly, the winner (unique human clicks per
delivered email) to the rest after the wait, and nobody ever gets two versions."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from funnel.models import Broadcast, BroadcastRecipient, Delivery, DeliveryEvent, Subscriber
from funnel.newsletter import subject_tests
from tests.newsletter_support import add, run_worker, write_broadcast
from tests.sendgrid_support import Signer, post_events

SUBJECTS = ["Hills made easy", "Six hills, one coffee"]
MIN_EACH = 5


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    # A hundred readers a subject in production; five keep these tests small.
    return {**app_config, "SUBJECT_TEST_MIN_PER_SUBJECT": MIN_EACH,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def _file(emails_dir, subjects=SUBJECTS, slug="hills"):
    listed = "".join(f"\n  - \"{s}\"" for s in subjects)
    return write_broadcast(emails_dir, slug, subject=subjects[0] if subjects else "Hills",
                           subjects=listed)


def _readers(db, clock, n: int) -> None:
    for i in range(n):
        add(db, f"r{i:03d}@example.com", now=clock.now)


def _subjects_by_reader(outbox) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for msg in outbox.messages():
        got.setdefault(msg["To"], []).append(msg["Subject"])
    return got


def _events(db, clock, slug: str, variant: int, clicks: int, *, scanner: int = 0) -> None:
    """Every sample email of ``variant`` delivered; ``clicks`` readers click a minute
    later, ``scanner`` more are 'clicked' by a link scanner within a second."""
    rows = db.execute(select(Delivery).join(
        BroadcastRecipient, BroadcastRecipient.subscriber_id == Delivery.subscriber_id)
        .where(Delivery.step_slug == slug, BroadcastRecipient.variant == variant)).scalars().all()
    for i, d in enumerate(rows):
        db.add(DeliveryEvent(delivery_id=d.id, kind="delivered", step_slug=slug, at=d.sent_at))
        if i < clicks:
            db.add(DeliveryEvent(delivery_id=d.id, kind="click", step_slug=slug,
                                 at=d.sent_at + timedelta(minutes=1)))
        elif i < clicks + scanner:
            db.add(DeliveryEvent(delivery_id=d.id, kind="click", step_slug=slug,
                                 at=d.sent_at + timedelta(seconds=1)))
    db.commit()


def test_the_winner_goes_to_the_rest_and_nobody_gets_two(runner, db, clock, emails_dir,
                                                         outbox, logged_in):
    _readers(db, clock, 40)
    _file(emails_dir)
    result = runner.invoke(args=["broadcast", "send", "hills", "--test-sample", "25",
                                 "--test-wait", "4h"])
    assert result.exit_code == 0, result.output
    assert "Subject test: 5 readers for each of the 2 subjects (10 of 40)" in result.output
    run_worker(runner)
    sample = _subjects_by_reader(outbox)
    assert len(sample) == 10
    assert Counter(s for [s] in sample.values()) == {SUBJECTS[0]: 5, SUBJECTS[1]: 5}
    # The second subject draws more human clicks; the first only a scanner's.
    _events(db, clock, "hills", 0, clicks=1, scanner=4)
    _events(db, clock, "hills", 1, clicks=3)
    clock.advance(hours=3, minutes=59)
    run_worker(runner)
    assert len(outbox.messages()) == 10  # still waiting
    page = logged_in.get("/admin/broadcasts/hills").get_data(as_text=True)
    assert "The winner is picked" in page and "waiting" in page
    clock.advance(minutes=2)
    run_worker(runner)
    got = _subjects_by_reader(outbox)
    assert len(got) == 40 and all(len(v) == 1 for v in got.values())  # one copy each
    rest = [v[0] for k, v in got.items() if k not in sample]
    assert rest == [SUBJECTS[1]] * 30
    db.rollback()
    row = db.scalar(select(Broadcast).where(Broadcast.slug == "hills"))
    assert (row.test_state, row.test_winner, row.status) == ("decided", 1, "sent")
    assert db.scalar(select(func.count()).select_from(Delivery)
                     .where(Delivery.step_slug == "hills")) == 40
    page = logged_in.get("/admin/broadcasts/hills").get_data(as_text=True)
    assert "Six hills, one coffee&#34; wins" in page or "Six hills, one coffee\" wins" in page
    figures = re.findall(r"<tr><td>([^<]+)</td>((?:<td class=\"num\">[^<]*</td>)+)", page)
    cells = {html_subject: re.findall(r">([^<]*)<", nums)[::2] for html_subject, nums in figures}
    assert cells["Hills made easy"][:4] == ["5", "5", "5", "1"]
    assert cells["Six hills, one coffee"][:4] == ["5", "5", "5", "3"]
    assert "<strong>winner</strong>" in page


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"


def test_a_click_the_machine_check_flags_never_makes_a_subject_win(
        runner, db, clock, emails_dir, outbox, client, signer, logged_in):
    _readers(db, clock, 20)
    _file(emails_dir)
    assert runner.invoke(args=["broadcast", "send", "hills", "--test-sample", "50",
                               "--test-wait", "1h"]).exit_code == 0
    run_worker(runner)
    db.rollback()
    by_variant = {v: db.scalars(select(Delivery).join(
        BroadcastRecipient, BroadcastRecipient.subscriber_id == Delivery.subscriber_id)
        .where(Delivery.step_slug == "hills", BroadcastRecipient.variant == v)
        .order_by(Delivery.id)).all() for v in (0, 1)}
    events = []

    def event(d, kind: str, after: int, n: int = 0, **extra) -> None:
        events.append({"email": d.subscriber.email, "delivery_id": d.public_id,
                       "event": kind, "sg_event_id": f"{kind}-{d.id}-{n}",
                       "timestamp": int(d.sent_at.timestamp()) + after, **extra})

    for d in by_variant[0] + by_variant[1]:
        event(d, "delivered", 1)
    # The first subject: a mail filter's scanner follows every link of four emails five
    # minutes after sending (past the old 30-second rule), and one reader clicks.
    for d in by_variant[0][:4]:
        for n in range(3):
            event(d, "click", 300, n, url=f"https://example.org/{n}", ip="198.51.100.4",
                  useragent="Mozilla/5.0")
    event(by_variant[0][4], "click", 900, url="https://example.org/0", ip="203.0.113.9",
          useragent=IPHONE)
    # The second: two readers on a phone click ten seconds after it lands. The check
    # finds people, so they count, early as they are.
    for d in by_variant[1][:2]:
        event(d, "click", 10, url="https://example.org/0", ip="203.0.113.7",
              useragent=IPHONE)
    resp = post_events(client, signer, events, int(clock.now.timestamp()))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["recorded"] == 10 + 1 + 2
    db.rollback()
    assert db.scalars(select(DeliveryEvent.machine_checked).where(
        DeliveryEvent.kind == "click")).all() == [True] * 3
    clock.advance(hours=1, minutes=1)
    run_worker(runner)
    db.rollback()
    row = db.scalar(select(Broadcast).where(Broadcast.slug == "hills"))
    assert row.test_winner == 1, row.test_note
    assert (f"\"{SUBJECTS[0]}\": 1 of 5 delivered clicked (20.0%), 4 more by a link "
            "scanner, not counted") in row.test_note
    assert f"\"{SUBJECTS[1]}\": 2 of 5 delivered clicked (40.0%)" in row.test_note
    assert Counter(m["Subject"] for m in outbox.messages())[SUBJECTS[1]] == 15
    page = logged_in.get("/admin/broadcasts/hills").get_data(as_text=True)
    figures = re.findall(r"<tr><td>([^<]+)</td>((?:<td class=\"num\">[^<]*</td>)+)", page)
    cells = {subject: re.findall(r">([^<]*)<", nums)[::2] for subject, nums in figures}
    assert cells[SUBJECTS[0]][3:] == ["1", "20.0 %", "4"]
    assert cells[SUBJECTS[1]][3:] == ["2", "40.0 %", "0"]


def test_a_tie_keeps_the_first_subject(runner, db, clock, emails_dir, outbox):
    _readers(db, clock, 20)
    _file(emails_dir)
    assert runner.invoke(args=["broadcast", "send", "hills", "--test-sample", "50",
                               "--test-wait", "1h"]).exit_code == 0
    run_worker(runner)
    _events(db, clock, "hills", 0, clicks=2)
    _events(db, clock, "hills", 1, clicks=2)
    clock.advance(hours=1, minutes=1)
    run_worker(runner)
    db.rollback()
    row = db.scalar(select(Broadcast).where(Broadcast.slug == "hills"))
    assert row.test_winner == 0 and "a tie" in row.test_note
    assert Counter(m["Subject"] for m in outbox.messages())[SUBJECTS[0]] == 15


def test_too_small_an_audience_runs_no_test(runner, db, clock, emails_dir, outbox):
    _readers(db, clock, 9)  # two subjects need 2 x 5
    _file(emails_dir)
    result = runner.invoke(args=["broadcast", "send", "hills"])
    assert result.exit_code == 0
    assert "No subject test: 9 readers are too few" in result.output
    run_worker(runner)
    assert [m["Subject"] for m in outbox.messages()] == [SUBJECTS[0]] * 9


def test_the_default_sample_is_a_fifth_with_a_floor_per_subject():
    plan = subject_tests.TestPlan()
    assert subject_tests.per_subject(10_000, 2, plan) == 1000   # 20 % of 10,000, halved
    assert subject_tests.per_subject(600, 2, plan) == 100       # the floor: 100 a subject
    assert subject_tests.per_subject(150, 2, plan) == 0         # too few: no test
    assert subject_tests.per_subject(10_000, 4, subject_tests.TestPlan(sample_percent=100)) == 2500


@pytest.mark.parametrize("args, message", [
    (["--test-sample", "101"], "from 1 to 100"),
    (["--test-sample", "0"], "from 1 to 100"),
    (["--test-sample", "abc"], "not a percentage"),
    (["--test-wait", "soon"], "not a length of time"),
    (["--test-wait", "30d"], "between 10 minutes and 7 days"),
])
def test_bad_test_options_are_refused(runner, db, clock, emails_dir, args, message):
    _readers(db, clock, 3)
    _file(emails_dir)
    result = runner.invoke(args=["broadcast", "send", "hills", *args])
    assert result.exit_code != 0 and message in result.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


@pytest.mark.parametrize("subjects, message", [
    (["Only one"], "at least 2 subjects"),
    ([f"Subject {i}" for i in range(5)], "at most 4 subjects"),
    (["Same", "same"], "are the same"),
])
def test_bad_subject_lists_are_refused(runner, db, clock, emails_dir, subjects, message):
    _readers(db, clock, 3)
    _file(emails_dir, subjects)
    result = runner.invoke(args=["broadcast", "send", "hills"])
    assert result.exit_code != 0 and message in result.output
    check = runner.invoke(args=["emails", "check"])
    assert message in check.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_a_test_on_a_file_with_one_subject_is_refused(runner, db, clock, emails_dir):
    _readers(db, clock, 3)
    result = runner.invoke(args=["broadcast", "send", "first-issue", "--test-sample", "20"])
    assert result.exit_code != 0 and "has one subject" in result.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_every_reader_has_one_row_with_at_most_one_variant(runner, db, clock, emails_dir):
    _readers(db, clock, 30)
    _file(emails_dir, ["A one", "B two", "C three"])
    assert runner.invoke(args=["broadcast", "send", "hills", "--test-sample", "50"]).exit_code == 0
    db.rollback()
    rows = db.execute(select(BroadcastRecipient.subscriber_id, BroadcastRecipient.variant,
                             BroadcastRecipient.due_at)).all()
    assert len(rows) == len({r.subscriber_id for r in rows}) == 30
    assert Counter(r.variant for r in rows) == {0: 5, 1: 5, 2: 5, None: 15}
    assert all(r.due_at is None for r in rows if r.variant is None)  # held for the winner
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 30


def test_with_local_time_the_rest_get_the_winner_at_that_hour_in_their_zone(
        runner, db, clock, emails_dir, outbox):
    for i in range(20):
        add(db, f"r{i:03d}@example.com", now=clock.now,
            tz="Asia/Tokyo" if i % 2 else "Europe/London")
    _file(emails_dir)
    result = runner.invoke(args=["broadcast", "send", "hills", "--local", "09:00",
                                 "--test-sample", "50", "--test-wait", "1h"])
    assert result.exit_code == 0, result.output
    db.rollback()
    row = db.scalar(select(Broadcast))
    clock.now = row.test_decide_at
    run_worker(runner)
    db.rollback()
    held = db.execute(select(BroadcastRecipient.due_at, Subscriber.timezone)
                      .join(Subscriber, Subscriber.id == BroadcastRecipient.subscriber_id)
                      .where(BroadcastRecipient.sampled.is_(False))).all()
    assert len(held) == 10
    from zoneinfo import ZoneInfo

    for due, tz in held:
        local = due.astimezone(ZoneInfo(tz))
        assert (local.hour, local.minute) == (9, 0) and due >= clock.now


def test_the_web_form_refuses_a_bad_sample(logged_in, db, clock, emails_dir):
    from tests.conftest import csrf_token

    _readers(db, clock, 3)
    _file(emails_dir)
    token = csrf_token(logged_in, "/admin/broadcasts/hills")
    for sample, message in (("101", "from 1 to 100"), ("0", "from 1 to 100")):
        page = logged_in.post("/admin/broadcasts/hills/schedule",
                              data={"csrf_token": token, "confirm": "yes",
                                    "test_sample": sample}, follow_redirects=True)
        assert f"Not scheduled: the test sample must be a whole percentage {message}" in \
            page.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_every_link_in_a_sent_newsletter_works(runner, db, clock, emails_dir, outbox, client):
    """The reader's view-in-browser link shows the copy they got (it answered 404)."""
    _readers(db, clock, 20)
    _file(emails_dir)
    assert runner.invoke(args=["broadcast", "send", "hills", "--test-sample", "50"]).exit_code == 0
    run_worker(runner)
    for msg in outbox.messages():
        links = set(re.findall(r'https?://localhost[^\s"<>)\]]*',
                               outbox.text(msg) + outbox.html(msg)))
        assert any("/view/" in u for u in links)
        for url in links:
            resp = client.get(url.replace("http://localhost", ""))
            assert resp.status_code == 200, url
            if "/view/" in url:
                assert f"<title>{msg['Subject']}" in resp.get_data(as_text=True) or \
                    msg["Subject"] in resp.get_data(as_text=True)
