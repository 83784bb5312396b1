"""Acting on one subscriber from their admin page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from funnel.models import ConsentRecord, Subscriber
from funnel.runtime import make_worker
from tests.admin_support import ADMIN, a_subscriber, post, reload
from tests.conftest import sign_up


def page_of(client, sub) -> str:
    return client.get(f"/admin/subscribers/{sub.public_id}").get_data(as_text=True)


def act(client, sub, action: str, **data):
    path = f"/admin/subscribers/{sub.public_id}"
    return post(client, f"{path}/{action}", path, **data)


def test_resend_confirmation_uses_the_public_forms_cap(app, client, logged_in, db, clock,
                                                       outbox):
    worker = make_worker(app.extensions["funnel"])
    sign_up(client, "new@example.com")
    worker.run_pass(clock.now)
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "new@example.com"))
    assert len(outbox.to("new@example.com")) == 1
    resp = act(logged_in, sub, "resend-confirmation")
    assert resp.status_code == 303
    page = page_of(logged_in, sub)
    assert "was sent a few minutes ago" in page  # capped: no second email yet
    worker.run_pass(clock.now)
    assert len(outbox.to("new@example.com")) == 1
    clock.advance(minutes=6)
    act(logged_in, sub, "resend-confirmation")
    assert "Confirmation email queued" in page_of(logged_in, sub)
    assert len(outbox.to("new@example.com")) == 1  # not sent in the request
    worker.run_pass(clock.now)
    assert len(outbox.to("new@example.com")) == 2


def test_pause_and_resume(logged_in, db, clock):
    sub = a_subscriber(db, clock)
    act(logged_in, sub, "pause", length="1w")
    assert reload(db, sub).paused_until == clock.now + timedelta(weeks=1)
    assert "Paused until" in page_of(logged_in, sub)
    act(logged_in, sub, "resume")
    assert reload(db, sub).paused_until is None
    resp = act(logged_in, sub, "pause", length="forever-and-a-day")
    assert resp.status_code == 303
    assert reload(db, sub).paused_until is None
    assert "choose how long" in page_of(logged_in, sub).lower()


def test_edit_first_name_and_time_zone(logged_in, db, clock):
    sub = a_subscriber(db, clock)
    act(logged_in, sub, "profile", first_name="Ada", timezone="Asia/Kolkata")
    got = reload(db, sub)
    assert (got.first_name, got.timezone) == ("Ada", "Asia/Kolkata")
    for bad in ({"first_name": "A\nB", "timezone": "UTC"},
                {"first_name": "Ada", "timezone": "Factory"},
                {"first_name": "Ada", "timezone": "Mars/Olympus"}):
        resp = act(logged_in, sub, "profile", **bad)
        assert resp.status_code == 303
        got = reload(db, sub)
        assert (got.first_name, got.timezone) == ("Ada", "Asia/Kolkata"), bad


def test_next_email_in_their_local_time(app, logged_in, db, clock):
    # 09:00 UTC on 1 Dec is 14:30 in Kolkata: inside the sending window.
    sub = a_subscriber(db, clock, tz="Asia/Kolkata")
    make_worker(app.extensions["funnel"]).run_pass(clock.now)  # sends step 1, plans step 2
    page = page_of(logged_in, sub)
    block = page[page.index('id="next-email"'):]
    block = block[:block.index("</dd>")]
    got = reload(db, sub)
    from zoneinfo import ZoneInfo

    local = got.next_due_at.astimezone(ZoneInfo("Asia/Kolkata"))
    assert local.strftime("%H:%M") in block
    assert "Asia/Kolkata" in block
    assert got.next_due_at.strftime("%H:%M") in block  # UTC alongside


def test_confirm_by_hand_records_who_and_why(logged_in, db, clock):
    sub = a_subscriber(db, clock, status="pending")
    resp = act(logged_in, sub, "confirm", reason="")
    assert reload(db, sub).status == "pending"  # a reason is required
    act(logged_in, sub, "confirm", reason="Asked me in person at the club, 30 Nov")
    got = reload(db, sub)
    assert got.status == "confirmed" and got.next_due_at == clock.now
    record = db.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == sub.id,
                                                   ConsentRecord.action == "confirm"))
    assert record.stated_by == ADMIN
    assert "Asked me in person" in record.text
    assert ADMIN in page_of(logged_in, sub)
    assert resp.status_code == 303


def test_unsubscribe_and_erase_from_the_page(logged_in, db, clock):
    sub = a_subscriber(db, clock)
    act(logged_in, sub, "unsubscribe")
    assert reload(db, sub).status == "unsubscribed"
    act(logged_in, sub, "erase", confirm="yes")
    assert reload(db, sub) is None


@pytest.mark.parametrize("action", ["pause", "resume", "profile", "confirm",
                                    "resend-confirmation", "retry"])
def test_actions_need_login(client, db, clock, action):
    sub = a_subscriber(db, clock, status="pending")
    resp = client.post(f"/admin/subscribers/{sub.public_id}/{action}",
                       data={"reason": "x", "first_name": "Eve", "timezone": "UTC"})
    assert resp.status_code in (302, 400)
    got = reload(db, sub)
    assert got.status == "pending" and got.first_name is None
