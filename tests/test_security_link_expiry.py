"""Personal links expire (issue 27): preference, plan and view links 90 days after
the email that carried them, the data export after 24 hours; unsubscribe links
never. An expired link shows nothing personal and offers a fresh link by email,
queued for the worker and rate-limited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from funnel.models import Delivery
from funnel.runtime import make_worker
from tests.conftest import sign_up_and_confirm

EMAIL = "robin.reader@example.com"
NAME = "Robinette"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RATELIMIT_FRESH_LINK": "3 per hour"}


@pytest.fixture
def first_email(app, client, outbox, clock):
    """The plan's first email, composed at the clock's time, and the signup IP."""
    sign_up_and_confirm(client, outbox, EMAIL, NAME)
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    return outbox.to(EMAIL)[-1]


def link(outbox, msg, kind: str) -> str:
    return outbox.link(msg, kind)


def plan_path(outbox, msg) -> str:
    m = re.search(r"https?://[^/\s]+(/plan/[A-Za-z0-9._\-]+?)(?:\.pdf)?(?=[\s)\]>]|$)",
                  outbox.text(msg), re.M)
    assert m, outbox.text(msg)
    return m.group(1)


def shows_nothing_personal(resp) -> None:
    body = resp.get_data(as_text=True)
    assert EMAIL not in body and NAME not in body and "127.0.0.1" not in body
    assert resp.headers["Cache-Control"] == "no-store"


def test_a_preference_link_works_for_90_days_then_offers_a_fresh_one(client, outbox, clock,
                                                                      first_email):
    path = link(outbox, first_email, "preferences")
    clock.advance(days=89)
    assert NAME in client.get(path).get_data(as_text=True)
    clock.advance(days=2)
    resp = client.get(path)
    assert resp.status_code == 410
    shows_nothing_personal(resp)
    assert "Email me a fresh link" in resp.get_data(as_text=True)
    for action in ("/data.json", "/erase"):
        old = client.get(path + action)
        assert old.status_code == 410, action
        shows_nothing_personal(old)


def test_the_data_export_needs_a_link_younger_than_a_day(client, outbox, clock, first_email):
    path = link(outbox, first_email, "preferences")
    clock.advance(hours=23)
    fresh = client.get(path + "/data.json")
    assert fresh.status_code == 200 and EMAIL in fresh.get_data(as_text=True)
    clock.advance(hours=2)
    old = client.get(path + "/data.json")
    assert old.status_code == 410
    shows_nothing_personal(old)
    assert "last 24 hours" in old.get_data(as_text=True)
    assert client.get(path).status_code == 200  # the page itself still opens


def test_plan_and_view_links_expire_too(client, outbox, clock, first_email):
    plan, view = plan_path(outbox, first_email), link(outbox, first_email, "view")
    clock.advance(days=89)
    assert client.get(plan).status_code == 200 and client.get(view).status_code == 200
    clock.advance(days=2)
    for path in (plan, plan + ".pdf", view):
        resp = client.get(path)
        assert resp.status_code == 410, path
        shows_nothing_personal(resp)


def test_unsubscribe_links_keep_working_after_a_year(client, db, outbox, clock, first_email):
    path = link(outbox, first_email, "unsubscribe")
    clock.advance(days=400)
    assert client.get(path).status_code == 200
    resp = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200
    from tests.security_support import subscriber

    assert subscriber(db, EMAIL).status == "unsubscribed"


def test_an_expired_link_mails_a_fresh_one_through_the_worker(app, client, db, outbox, clock,
                                                             first_email):
    from tests.conftest import csrf_token

    path = link(outbox, first_email, "preferences")
    clock.advance(days=120)
    before = len(outbox.to(EMAIL))
    resp = client.post(path + "/fresh-link", data={"csrf_token": csrf_token(client, path)})
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    shows_nothing_personal(resp)
    assert len(outbox.to(EMAIL)) == before  # never sent inside the request
    db.rollback()
    queued = db.scalars(select(Delivery).where(Delivery.step_slug.like("fresh-link-%"))).all()
    assert [d.state for d in queued] == ["queued"]

    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    [fresh] = [m for m in outbox.to(EMAIL) if "new Run Stronger preferences link" in m["Subject"]]
    new_path = link(outbox, fresh, "preferences")
    assert NAME in client.get(new_path).get_data(as_text=True)
    assert EMAIL in client.get(new_path + "/data.json").get_data(as_text=True)


def test_fresh_links_are_rate_limited(app, client, db, outbox, clock, first_email):
    from tests.conftest import csrf_token

    path = link(outbox, first_email, "preferences")
    clock.advance(days=120)
    token = csrf_token(client, path)
    answers = [client.post(path + "/fresh-link", data={"csrf_token": token}).status_code
               for _ in range(5)]
    assert answers[:3] == [200, 200, 200] and answers[3:] == [429, 429]
    db.rollback()
    # The per-address caps of system mail: one waiting email, not three.
    queued = db.scalars(select(Delivery).where(Delivery.step_slug.like("fresh-link-%"))).all()
    assert len(queued) == 1


def test_a_forged_or_unsubscribed_link_gets_the_same_answer_and_no_mail(app, client, db, outbox,
                                                                         clock, first_email):
    from tests.conftest import csrf_token

    path = link(outbox, first_email, "preferences")
    client.post(link(outbox, first_email, "unsubscribe"))
    clock.advance(days=120)
    token = csrf_token(client, path)
    assert client.post(path + "/fresh-link", data={"csrf_token": token}).status_code == 200
    assert client.post(path[:-3] + "abc/fresh-link",
                       data={"csrf_token": token}).status_code == 400
    db.rollback()
    assert db.scalars(select(Delivery).where(Delivery.step_slug.like("fresh-link-%"))).all() == []
