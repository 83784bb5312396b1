"""The embeddable sign-up form over plain HTTP: origins, honeypot, limits, JSON."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.models import ConsentRecord, Subscriber
from funnel.subscribers import privacy
from tests.conftest import deliver, take_in

BLOG = "https://blog.runstronger.example"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "EMBED_ORIGINS": [BLOG, "http://localhost:8001"]}


def post(client, email="embed@example.com", origin=BLOG, referer=None, accept=None, **fields):
    headers = {}
    if origin:
        headers["Origin"] = origin
    if referer:
        headers["Referer"] = referer
    if accept:
        headers["Accept"] = accept
    return client.post("/embed/subscribe", data={"email": email, **fields}, headers=headers)


def test_an_allowed_site_signs_up_without_a_csrf_cookie(client, db, outbox):
    resp = post(client, first_name="Bea", referer=BLOG + "/lateral-hip-stretch", tz="Europe/Paris")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/check-your-inbox")
    take_in(client.application)  # the worker's first step: the intake row becomes a sign-up
    sub = db.scalar(select(Subscriber))
    assert (sub.email, sub.status, sub.timezone) == ("embed@example.com", "pending", "Europe/Paris")
    assert sub.referrer == "blog.runstronger.example"
    consent = db.scalar(select(ConsentRecord))
    assert consent.page == BLOG + "/lateral-hip-stretch"  # where they signed up
    deliver(client.application)  # the worker sends what the request queued
    assert len(outbox.to("embed@example.com")) == 1  # double opt-in: the confirmation


def test_without_a_referer_the_origin_itself_is_recorded(client, db):
    assert post(client).status_code == 303
    take_in(client.application)
    assert db.scalar(select(ConsentRecord)).page == BLOG + "/"


def test_fetch_gets_json_with_cors_for_that_origin(client, db):
    resp = post(client, accept="application/json")
    assert resp.status_code == 200 and resp.get_json()["ok"] is True
    assert resp.headers["Access-Control-Allow-Origin"] == BLOG
    bad = post(client, email="nope", accept="application/json")
    assert bad.status_code == 422 and "email" in bad.get_json()["errors"]


@pytest.mark.parametrize("origin, referer", [
    ("https://evil.example", None),
    ("https://blog.runstronger.example.evil.example", None),
    ("http://blog.runstronger.example", None),  # another scheme is another origin
    ("https://blog.runstronger.example:8443", None),
    (None, None),  # a post that says nothing about where it came from
    ("null", "https://evil.example/page"),
    (None, "https://evil.example/?u=https://blog.runstronger.example"),
])
def test_other_origins_are_refused_with_a_clear_message(client, db, outbox, origin, referer):
    resp = post(client, origin=origin, referer=referer)
    assert resp.status_code == 403
    assert "only be used on the sites the coach has allowed" in resp.get_data(as_text=True)
    assert db.scalars(select(Subscriber)).all() == [] and len(outbox) == 0
    as_json = post(client, origin=origin, referer=referer, accept="application/json")
    assert as_json.status_code == 403 and "allowed" in as_json.get_json()["error"]


def test_a_null_origin_falls_back_to_an_allowed_referer(client, db):
    assert post(client, origin="null", referer=BLOG + "/post").status_code == 303
    take_in(client.application)
    assert db.scalar(select(Subscriber)) is not None


def test_the_honeypot_stores_nothing_but_looks_like_success(client, db, outbox):
    resp = post(client, website="http://spam.example")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/check-your-inbox")
    assert db.scalars(select(Subscriber)).all() == [] and len(outbox) == 0


def test_bad_input_is_shown_on_our_landing_page(client, db):
    resp = post(client, email="not-an-address")
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "look right" in page and 'action="/free-plan"' in page
    assert db.scalars(select(Subscriber)).all() == []


def test_suppressed_addresses_get_the_same_answer(app, client, db, outbox, clock):
    post(client, email="erased@example.com")
    deliver(client.application)  # the worker sends the first sign-up's confirmation
    with app.extensions["funnel"].sessions() as s:
        privacy.erase(s, privacy.find_by_email(s, "erased@example.com"), clock.now)
    resp = post(client, email="erased@example.com")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/check-your-inbox")
    db.rollback()
    assert db.scalars(select(Subscriber)).all() == []
    deliver(client.application)  # the second queued nothing: still only the first email
    assert len(outbox.to("erased@example.com")) == 1


def test_the_landing_page_and_the_embed_share_one_rate_limit(app, client):
    from tests.conftest import sign_up

    app.config["RATELIMIT_SIGNUP"] = "3 per minute"
    assert sign_up(client, "a@example.com").status_code == 303
    assert post(client, email="b@example.com").status_code == 303
    assert post(client, email="c@example.com").status_code == 303
    assert post(client, email="d@example.com").status_code == 429
    assert sign_up(client, "e@example.com").status_code == 429


def test_the_iframe_page_may_be_framed_only_by_allowed_sites(client):
    resp = client.get("/embed/form")
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and BLOG in csp
    assert "X-Frame-Options" not in resp.headers
    assert client.get("/free-plan").headers["X-Frame-Options"] == "DENY"  # the rest stays unframeable
    done = post(client, frame="1")
    assert done.headers["Location"].endswith("/embed/thanks")


def test_admin_shows_the_snippets(app, client, db, clock):
    from funnel.accounts.passwords import hash_password
    from funnel.models import AdminUser
    from tests.conftest import csrf_token

    db.add(AdminUser(email="coach@example.com", password_hash=hash_password("correct horse battery"),
                     created_at=clock.now))
    db.commit()
    token = csrf_token(client, "/admin/login")
    client.post("/admin/login", data={"email": "coach@example.com",
                                      "password": "correct horse battery", "csrf_token": token})
    page = client.get("/admin/embed").get_data(as_text=True)
    assert "http://localhost/embed/subscribe" in page and "&lt;iframe" in page
    assert BLOG in page
