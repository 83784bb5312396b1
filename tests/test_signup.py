"""The sign-up funnel: article → landing page → double opt-in."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from funnel.models import Subscriber
from tests.conftest import csrf_token, deliver, press_confirm, sign_up, sign_up_and_confirm, take_in


def subscriber(db, email):
    db.rollback()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def test_article_leads_to_landing_page_with_utm_kept(client):
    page = client.get("/?utm_source=newsletter").get_data(as_text=True)
    assert "Lateral Hip &amp; Low Back Stretch for Runners" in page
    assert "Run stronger – free plan" in page
    assert 'href="/free-plan?utm_source=newsletter&amp;via=article"' in page
    landing = client.get("/free-plan?utm_source=newsletter").get_data(as_text=True)
    assert 'name="utm_source" type="hidden" value="newsletter"' in landing
    assert '<label for="email">' in landing


def test_signup_sends_confirmation_and_stores_pending(client, db, outbox):
    resp = sign_up(client, "  Runner@Example.COM ", "Sam", tz="America/New_York",
                   utm_source="ig", utm_campaign="hip")
    assert resp.status_code == 303 and resp.location.endswith("/check-your-inbox")
    sub = subscriber(db, "runner@example.com")
    assert sub.status == "pending" and sub.first_name == "Sam"
    assert sub.timezone == "America/New_York"
    assert (sub.utm_source, sub.utm_campaign) == ("ig", "hip")
    consent = sub.consents[0]
    assert consent.action == "signup" and consent.text_version and consent.ip == "127.0.0.1"
    [msg] = outbox.to("runner@example.com")
    assert msg["Subject"] == "Confirm your email to get the free plan"
    assert msg.get_content_type() == "multipart/alternative"
    assert "/confirm/" in outbox.html(msg)


def test_confirm_link_confirms_and_twice_is_harmless(client, db, outbox, clock):
    sign_up(client, "a@example.com")
    link = outbox.link(outbox.to("a@example.com")[0], "confirm")
    clock.advance(hours=1)
    first = press_confirm(client, link)
    assert first.status_code == 200 and "Welcome" in first.get_data(as_text=True)
    sub = subscriber(db, "a@example.com")
    assert sub.status == "confirmed" and sub.confirmed_at == clock.now
    again = press_confirm(client, link)
    assert again.status_code == 200 and "already confirmed" in again.get_data(as_text=True)
    assert subscriber(db, "a@example.com").confirmed_at == clock.now
    assert [c.action for c in subscriber(db, "a@example.com").consents] == ["signup", "confirm"]


def test_same_answer_for_new_pending_and_confirmed(client, outbox, clock):
    first = sign_up(client, "b@example.com")
    pending_again = sign_up(client, "b@example.com")
    assert first.status_code == pending_again.status_code == 303
    assert first.location == pending_again.location
    # A second request within minutes doesn't mail them twice…
    assert len(outbox.to("b@example.com")) == 1
    press_confirm(client, outbox.link(outbox.to("b@example.com")[0], "confirm"))
    confirmed = sign_up(client, "b@example.com")
    assert confirmed.status_code == 303 and confirmed.location == first.location
    assert len(outbox.to("b@example.com")) == 1
    # …but asking again later resends a pending address's link.
    sign_up(client, "c@example.com")
    clock.advance(minutes=10)
    sign_up(client, "c@example.com")
    assert len(outbox.to("c@example.com")) == 2


def test_expired_link_offers_a_new_one(client, db, outbox, clock):
    sign_up(client, "late@example.com")
    link = outbox.link(outbox.to("late@example.com")[0], "confirm")
    clock.advance(days=8)
    resp = client.get(link)
    assert resp.status_code == 410
    assert "Send me a new link" in resp.get_data(as_text=True)
    assert subscriber(db, "late@example.com").status == "pending"
    token = csrf_token(client, link)
    resent = client.post(link + "/resend", data={"csrf_token": token})
    assert resent.status_code == 200
    deliver(client.application)  # the worker sends what the request queued
    new_link = outbox.link(outbox.to("late@example.com")[-1], "confirm")
    assert new_link != link
    assert press_confirm(client, new_link).status_code == 200
    assert subscriber(db, "late@example.com").status == "confirmed"


def test_tampered_token_is_refused(client, db, outbox):
    sign_up(client, "t@example.com")
    link = outbox.link(outbox.to("t@example.com")[0], "confirm")
    for bad in (link[:-3] + "xyz", link[:-10], "/confirm/garbage"):
        resp = client.get(bad)
        assert resp.status_code == 400
        assert "may have been cut short" in resp.get_data(as_text=True)
    assert subscriber(db, "t@example.com").status == "pending"


def test_unsubscribed_then_signing_up_again_needs_confirmation(client, db, outbox, clock):
    sign_up_and_confirm(client, outbox, "u@example.com")
    unsub = outbox.link(outbox.to("u@example.com")[0], "unsubscribe")
    assert client.post(unsub).status_code == 200
    assert subscriber(db, "u@example.com").status == "unsubscribed"
    clock.advance(days=1)
    sign_up(client, "u@example.com")
    assert subscriber(db, "u@example.com").status == "pending"
    assert len(outbox.to("u@example.com")) == 2
    press_confirm(client, outbox.link(outbox.to("u@example.com")[-1], "confirm"))
    assert subscriber(db, "u@example.com").status == "confirmed"


def count(db):
    db.rollback()
    return db.scalar(select(func.count()).select_from(Subscriber))


def test_bad_input_is_refused_and_nothing_written(client, db, outbox):
    cases = [
        ({"email": "not-an-address"}, "doesn't look right"),
        ({"email": ""}, "Please enter your email"),
        ({"email": "a" * 250 + "@example.com"}, "too long"),
        ({"email": "ok@example.com", "first_name": "x" * 81}, "under 80"),
        ({"email": "ok@example.com", "first_name": "Eve\r\nBcc: x@y.z"}, "line breaks"),
    ]
    for data, message in cases:
        resp = client.post("/free-plan", data={**data, "csrf_token": csrf_token(client)})
        assert resp.status_code == 422, data
        assert message in html.unescape(resp.get_data(as_text=True)), data
    assert count(db) == 0
    assert len(outbox) == 0


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://shop.localhost"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},  # an older browser: Origin only
    {"Origin": "null"},
])
def test_a_cross_site_post_is_refused_and_changes_nothing(client, app, db, outbox, headers):
    resp = client.post("/free-plan", data={"email": "x@example.com"}, headers=headers)
    assert resp.status_code == 403
    assert "can only be sent from the Run Stronger site" in resp.get_data(as_text=True)
    take_in(app)
    assert count(db) == 0 and len(outbox) == 0


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Origin": "http://localhost"},
    {},  # neither header: not a browser, nobody's cookies are used
])
def test_a_same_site_post_signs_up(client, db, outbox, headers):
    resp = client.post("/free-plan", data={"email": "same@example.com"}, headers=headers)
    assert resp.status_code == 303
    deliver(client.application)
    assert subscriber(db, "same@example.com").status == "pending"
    assert len(outbox.to("same@example.com")) == 1


def test_honeypot_answers_success_and_stores_nothing(client, db, outbox):
    resp = sign_up(client, "bot@example.com", website="http://spam.example")
    assert resp.status_code == 303
    assert count(db) == 0 and len(outbox) == 0


def test_flood_from_one_ip_is_rate_limited(app, client, db):
    app.config["RATELIMIT_SIGNUP"] = "5 per minute"
    statuses = [sign_up(client, f"f{i}@example.com").status_code for i in range(7)]
    assert statuses[:5] == [303] * 5
    assert statuses[5:] == [429, 429]
    resp = sign_up(client, "late@example.com")
    assert "Slow down" in resp.get_data(as_text=True)
    assert count(db) == 5


def test_error_pages_in_site_style(client):
    resp = client.get("/no-such-page")
    assert resp.status_code == 404
    assert "Page not found" in resp.get_data(as_text=True)
    assert "Run Stronger" in resp.get_data(as_text=True)


def test_unknown_time_zone_falls_back_to_default(client, db):
    sign_up(client, "tz@example.com", tz="Mars/Olympus_Mons")
    assert subscriber(db, "tz@example.com").timezone == "Europe/London"


def test_confirmation_link_still_works_just_before_expiry(client, db, outbox, clock):
    sign_up(client, "cfg@example.com")
    link = outbox.link(outbox.to("cfg@example.com")[0], "confirm")
    clock.advance(days=6, hours=23)
    assert press_confirm(client, link).status_code == 200
    assert subscriber(db, "cfg@example.com").status == "confirmed"


def test_crash_shows_the_site_500_page(app_config):
    from funnel import create_app

    app = create_app({**app_config, "TESTING": False})

    def boom():
        raise RuntimeError("database on fire")

    app.add_url_rule("/boom", view_func=boom)
    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    body = resp.get_data(as_text=True)
    assert "Something went wrong on our side" in body and "database on fire" not in body
    app.extensions["funnel"].engine.dispose()


def test_source_site_is_credited_through_the_article(client, db, outbox):
    # The page is the same for every reader: the Referer only counts the visit; the
    # article's script (tests/test_public_pages_browser.py) adds it to the link.
    article = client.get("/", headers={"Referer": "https://www.strava.com/clubs/123?x=private"})
    assert 'href="/free-plan?via=article"' in article.get_data(as_text=True)
    carried = client.get("/?ref=www.strava.com", headers={"Referer": "http://localhost/"})
    assert 'href="/free-plan?via=article&amp;ref=www.strava.com"' in carried.get_data(as_text=True)
    landing = client.get("/free-plan?ref=www.strava.com", headers={"Referer": "http://localhost/"})
    assert 'name="referrer" type="hidden" value="www.strava.com"' in landing.get_data(as_text=True)
    sign_up(client, "src@example.com", referrer="www.strava.com")
    sub = subscriber(db, "src@example.com")
    assert sub.referrer == "www.strava.com"  # the host only, never the full URL
    from funnel.models import Visit

    client.application.extensions["funnel_visits"].flush()  # views are written in batches
    db.rollback()
    hosts = [v.referrer_host for v in db.scalars(select(Visit).order_by(Visit.id))]
    assert hosts[:3] == ["www.strava.com", "www.strava.com", "www.strava.com"]


def test_resend_from_an_expired_link_is_throttled(client, db, outbox, clock):
    sign_up(client, "again@example.com")
    link = outbox.link(outbox.to("again@example.com")[0], "confirm")
    clock.advance(days=8)
    for _ in range(3):
        resp = client.post(link + "/resend", data={"csrf_token": csrf_token(client, link)})
        assert resp.status_code == 200
        deliver(client.application)
    assert len(outbox.to("again@example.com")) == 2  # the original and one fresh link
    clock.advance(minutes=61)  # the third waits an hour (tests/test_signup_abuse.py)
    client.post(link + "/resend", data={"csrf_token": csrf_token(client, link)})
    deliver(client.application)
    assert len(outbox.to("again@example.com")) == 3


def test_a_failing_mail_server_loses_no_sign_up_and_lets_the_person_retry(app, client, db, outbox):
    rt = app.extensions["funnel"]
    real = rt.transport

    class Down:
        idempotent, max_batch = True, 1

        def send(self, messages):
            raise OSError("connection refused")

    rt.transport = Down()
    assert sign_up(client, "down@example.com").status_code == 303
    assert subscriber(db, "down@example.com").status == "pending"  # the sign-up is kept
    rt.transport = real
    sign_up(client, "down@example.com")  # asking again at once sends it now
    assert len(outbox.to("down@example.com")) == 1


def test_one_click_unsubscribe_for_an_erased_address_still_answers_200(client, db, outbox, clock):
    from funnel.subscribers import privacy

    sign_up_and_confirm(client, outbox, "gone@example.com")
    unsub = outbox.link(outbox.to("gone@example.com")[0], "unsubscribe")
    privacy.erase(db, subscriber(db, "gone@example.com"), now=clock.now)
    resp = client.post(unsub, data={"List-Unsubscribe": "One-Click"})
    assert resp.status_code == 200
    assert client.post(unsub[:-4] + "abcd").status_code == 400  # a forged one still fails


def test_production_refuses_to_start_without_a_secret_key(monkeypatch, tmp_path):
    from funnel import create_app
    from funnel.config import ConfigError

    monkeypatch.delenv("SECRET_KEY", raising=False)
    for env in ("production", "Production", "prod"):
        monkeypatch.setenv("FUNNEL_ENV", env)
        with pytest.raises(ConfigError, match="SECRET_KEY must be set"):
            create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
