"""Scheduling in the coach's time: the admin's own zone (guessed once by the browser),
the audience from controls with a live count, moving and cancelling until the first
email leaves, and a time in the past refused."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from funnel.models import AdminUser, Broadcast, BroadcastRecipient
from tests.admin_support import ADMIN
from tests.conftest import csrf_token
from tests.newsletter_support import add, run_worker


def text(resp) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True))))


def _zone(client, name: str, guess: bool = False):
    token = csrf_token(client, "/admin/broadcasts/first-issue")
    data = {"csrf_token": token, "timezone": name, "back": "/admin/broadcasts/first-issue"}
    if guess:
        data["guess"] = "1"
    return client.post("/admin/account/timezone", data=data)


def _schedule(client, **fields):
    token = csrf_token(client, "/admin/broadcasts/first-issue")
    return client.post("/admin/broadcasts/first-issue/schedule",
                       data={"csrf_token": token, "confirm": "yes", **fields},
                       follow_redirects=True)


def test_the_browser_guess_is_saved_once_and_never_overrides_a_choice(logged_in, db):
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page  # not set yet: guess
    assert _zone(logged_in, "Europe/Paris", guess=True).get_json() == {"timezone": "Europe/Paris"}
    db.rollback()
    assert db.scalar(select(AdminUser.timezone).where(AdminUser.email == ADMIN)) == "Europe/Paris"
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert "Intl.DateTimeFormat" not in page  # saved once
    assert _zone(logged_in, "Asia/Tokyo", guess=True).get_json() == {"timezone": "Europe/Paris"}
    _zone(logged_in, "America/New_York")  # chosen on the page: that one wins
    db.rollback()
    assert db.scalar(select(AdminUser.timezone).where(AdminUser.email == ADMIN)) == \
        "America/New_York"
    bad = _zone(logged_in, "Mars/Olympus", guess=True)
    assert bad.status_code == 400
    resp = _zone(logged_in, "<script>")
    assert "not a time zone we know" in text(logged_in.get("/admin/broadcasts/first-issue"))
    assert resp.status_code == 303
    db.rollback()
    assert db.scalar(select(AdminUser.timezone).where(AdminUser.email == ADMIN)) == \
        "America/New_York"


def test_a_time_is_typed_and_shown_in_the_admins_zone(logged_in, db, clock):
    add(db, "r1@example.com", now=clock.now)
    _zone(logged_in, "Europe/Paris")  # UTC+1 in December
    day = (clock.now.date().toordinal() + 1)
    tomorrow = datetime.fromordinal(day).date().isoformat()
    token = csrf_token(logged_in, "/admin/broadcasts/first-issue")
    confirm = logged_in.post("/admin/broadcasts/first-issue/schedule",
                             data={"csrf_token": token, "at": f"{tomorrow}T07:00"})
    assert "07:00 (Europe/Paris)" in text(confirm) and "06:00 UTC" in text(confirm)
    page = _schedule(logged_in, at=f"{tomorrow}T07:00")
    db.rollback()
    row = db.scalar(select(Broadcast))
    assert row.send_at == datetime.fromisoformat(f"{tomorrow}T06:00").replace(tzinfo=UTC)
    assert "07:00 (Europe/Paris; 06:00 UTC)" in text(page)


def test_a_time_in_the_past_is_refused_in_the_admins_words(logged_in, db, clock):
    add(db, "r1@example.com", now=clock.now)
    _zone(logged_in, "Europe/Paris")
    page = _schedule(logged_in, at="2020-01-01T09:00")
    assert "Not scheduled: 01 Jan 2020 09:00 (Europe/Paris) is in the past" in text(page)
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_the_audience_controls_build_the_filter_and_the_count_is_live(logged_in, db, clock):
    add(db, "insta@example.com", now=clock.now, utm_source="instagram")
    add(db, "blog@example.com", now=clock.now, utm_source="blog")
    add(db, "insta2@example.com", now=clock.now, utm_source="instagram", utm_campaign="spring")
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert '<option value="instagram">instagram</option>' in page
    assert '<option value="spring">spring</option>' in page
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?plan=any&source=instagram"
                        "&campaign=any&signed_up_after=&signed_up_before=&where=").get_json()
    assert got["would_get"] == 2 and got["where"] == "source=instagram"
    assert ["outside the filter", 1] in got["lines"]
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?source=instagram"
                        "&campaign=spring").get_json()
    assert got["would_get"] == 1
    bad = logged_in.get("/admin/broadcasts/first-issue/audience.json?plan=sometimes")
    assert bad.status_code == 400 and "plan must be" in bad.get_json()["error"]
    token = csrf_token(logged_in, "/admin/broadcasts/first-issue")
    confirm = logged_in.post("/admin/broadcasts/first-issue/schedule",
                             data={"csrf_token": token, "source": "instagram", "plan": "any"})
    assert "2 subscribers will get it" in text(confirm) and "source=instagram" in text(confirm)
    _schedule(logged_in, where="source=instagram")
    db.rollback()
    assert len(db.scalars(select(BroadcastRecipient)).all()) == 2


def test_a_schedule_moves_until_the_first_email_leaves(logged_in, db, clock, runner, outbox):
    add(db, "r1@example.com", now=clock.now)
    _zone(logged_in, "UTC")
    later = (clock.now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    sooner = (clock.now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    _schedule(logged_in, at=later)
    token = csrf_token(logged_in, "/admin/broadcasts/first-issue")
    moved = logged_in.post("/admin/broadcasts/first-issue/move",
                           data={"csrf_token": token, "at": sooner}, follow_redirects=True)
    assert "Moved: now due from" in text(moved)
    db.rollback()
    due = db.scalar(select(BroadcastRecipient.due_at))
    assert due == datetime.fromisoformat(sooner).replace(tzinfo=UTC)
    past = logged_in.post("/admin/broadcasts/first-issue/move",
                          data={"csrf_token": token, "at": "2020-01-01T07:30"},
                          follow_redirects=True)
    assert "Not moved" in text(past) and "is in the past" in text(past)
    clock.now = due
    run_worker(runner)
    assert len(outbox.messages()) == 1
    late = logged_in.post("/admin/broadcasts/first-issue/move",
                          data={"csrf_token": token, "at": later}, follow_redirects=True)
    assert "can no longer be moved" in text(late)
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert 'id="move-at"' not in page  # the form is gone once it has left


def test_a_schedule_can_be_cancelled_before_it_leaves(logged_in, db, clock, runner, outbox):
    add(db, "r1@example.com", now=clock.now)
    tomorrow = datetime.fromordinal(clock.now.date().toordinal() + 1).date().isoformat()
    _schedule(logged_in, at=f"{tomorrow}T09:00")
    token = csrf_token(logged_in, "/admin/broadcasts/first-issue")
    logged_in.post("/admin/broadcasts/first-issue/cancel", data={"csrf_token": token})
    clock.advance(days=2)
    run_worker(runner)
    assert len(outbox.messages()) == 0


def test_tags_are_choices_in_the_audience(logged_in, db, clock):
    from funnel import tagging
    from funnel.core.states import TagSource

    racer = add(db, "racer@example.com", now=clock.now)
    add(db, "easy@example.com", now=clock.now)
    db.commit()
    tagging.add_tag(db, racer.id, "race", now=clock.now, source=TagSource.ADMIN, reason="test")
    db.commit()
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert '<select id="tag" name="tag">' in page and '<option value="race">race</option>' in page
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?tag=race").get_json()
    assert got["would_get"] == 1 and got["where"] == "tag=race"
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?without_tag=race").get_json()
    assert got["would_get"] == 1 and got["where"] == "without_tag=race"
    bad = logged_in.get("/admin/broadcasts/first-issue/audience.json?tag=no%2Cpe")
    assert bad.status_code == 400


def test_the_plan_topic_is_a_control_with_the_live_count(logged_in, db, clock):
    add(db, "both@example.com", now=clock.now)
    add(db, "news-only@example.com", now=clock.now, wants_plan=False)
    add(db, "plan-only@example.com", now=clock.now, wants_newsletter=False)
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert '<select id="wants_plan" name="wants_plan">' in page
    assert '<option value="no">no, turned the plan off</option>' in page
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?wants_plan=no").get_json()
    assert got["would_get"] == 1 and got["where"] == "wants_plan=no"
    assert got["describe"] == "turned the plan off"
    assert ["outside the filter", 1] in got["lines"]
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?wants_plan=yes").get_json()
    assert got["would_get"] == 1
    assert ["turned the newsletter off (wrong topic)", 1] in got["lines"]
    got = logged_in.get("/admin/broadcasts/first-issue/audience.json?wants_plan=any").get_json()
    assert got["would_get"] == 2 and got["where"] == ""
    bad = logged_in.get("/admin/broadcasts/first-issue/audience.json?wants_plan=sometimes")
    assert bad.status_code == 400 and "wants_plan must be yes" in bad.get_json()["error"]
    refused = _schedule(logged_in, wants_plan="sometimes")
    assert "Not scheduled: wants_plan must be yes" in text(refused)
    db.rollback()
    assert db.scalars(select(Broadcast)).all() == []
    _schedule(logged_in, wants_plan="no")
    db.rollback()
    [row] = db.scalars(select(BroadcastRecipient)).all()
    assert db.get(__import__("funnel.models", fromlist=["Subscriber"]).Subscriber,
                  row.subscriber_id).email == "news-only@example.com"
