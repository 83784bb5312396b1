"""Per-IP sign-up limits: a room of runners on one Wi-Fi gets in, a flood does not,
typos cost nothing, a stopped form keeps what was typed, IPv6 counts per /64."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from funnel.models import Subscriber
from tests.conftest import csrf_token, take_in

VENUE = "198.51.100.7"


@pytest.fixture
def app_config(app_config):
    # The shipped defaults, not the tests' generous ones.
    return {k: v for k, v in app_config.items() if k != "RATELIMIT_SIGNUP"}


def post(client, email, ip=VENUE, first_name="", **extra):
    token = csrf_token(client)
    return client.post("/free-plan", data={"email": email, "first_name": first_name,
                                           "csrf_token": token, **extra},
                       environ_base={"REMOTE_ADDR": ip})


def count(app, db) -> int:
    """Subscribers once the worker has taken in what the form stored."""
    take_in(app)
    db.rollback()
    return db.scalar(select(func.count(Subscriber.id)))


def test_a_room_of_25_runners_signs_up_within_a_minute(app, db, clock):
    statuses = []
    for i in range(25):
        runner = app.test_client()  # each on their own phone, all behind the venue's address
        statuses.append(post(runner, f"runner{i}@example.com", first_name=f"R{i}").status_code)
        clock.advance(seconds=2)
    assert statuses == [303] * 25
    assert count(app, db) == 25


def test_a_flood_from_one_address_is_cut(app, client, db):
    statuses = [post(client, f"flood{i}@example.com").status_code for i in range(120)]
    assert statuses[:25] == [303] * 25
    assert statuses.count(429) >= 80  # most of the flood is refused ...
    assert count(app, db) < 40  # ... and never reaches the database
    # Someone else, somewhere else, is not affected.
    assert post(client, "elsewhere@example.com", ip="203.0.113.50").status_code == 303


def test_failed_validations_do_not_count(app, client, db):
    for i in range(40):
        assert post(client, f"typo{i}@@example").status_code == 422
    assert post(client, "fixed@example.com").status_code == 303
    assert count(app, db) == 1


def test_a_stopped_form_is_shown_again_with_what_was_typed(app, client, db):
    app.config["RATELIMIT_SIGNUP"] = "2 per minute"
    for i in range(2):
        assert post(client, f"ok{i}@example.com").status_code == 303
    resp = post(client, "kim@example.com", first_name="Kim", utm_source="talk")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 429
    assert 'value="kim@example.com"' in html and 'value="Kim"' in html
    assert 'value="talk"' in html
    assert re.search(r'role="alert">[^<]*(wait a minute|a minute)', html, re.IGNORECASE), html
    assert "<form" in html and 'action="/free-plan"' in html
    assert count(app, db) == 2


def test_ipv6_addresses_count_per_64(app, client, db):
    app.config["RATELIMIT_SIGNUP"] = "3 per minute"
    # One home network hands out any address in its /64: they all count as one.
    same_net = [post(client, f"v6-{i}@example.com", ip=f"2001:db8:1:2::{i:x}").status_code
                for i in range(1, 6)]
    assert same_net == [303, 303, 303, 429, 429]
    # The neighbouring /64 is someone else.
    assert post(client, "other@example.com", ip="2001:db8:1:3::1").status_code == 303


def test_a_stopped_room_gets_in_again_once_the_minute_is_over(app, client, db, monkeypatch):
    from funnel.http import ratelimits

    now = [1_000_000.0]  # the limits' own clock (wall time), moved by hand
    monkeypatch.setattr(ratelimits, "time", type("Clock", (), {"time": staticmethod(lambda: now[0])}))
    app.config["RATELIMIT_SIGNUP"] = "2 per minute"
    assert [post(client, f"r{i}@example.com").status_code for i in range(3)] == [303, 303, 429]
    now[0] += 59
    assert post(client, "still@example.com").status_code == 429
    now[0] += 2
    assert post(client, "again@example.com").status_code == 303
    assert count(app, db) == 3
