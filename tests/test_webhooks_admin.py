"""The webhooks admin page: add an endpoint, see deliveries and answers, send again,
and the notice when an endpoint was disabled."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from funnel.accounts.passwords import hash_password
from funnel.hooks.dispatch import Dispatcher
from funnel.models import AdminUser, WebhookEndpoint, WebhookMessage
from tests.conftest import csrf_token, sign_up
from tests.webhook_support import Reply, start_receiver


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WEBHOOKS_ALLOW_PRIVATE": True, "WEBHOOKS_TIMEOUT": 1.0}


@pytest.fixture
def receiver():
    rec, server = start_receiver()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin_client(client, db, clock):
    db.add(AdminUser(email="coach@example.com", password_hash=hash_password("correct horse battery"),
                     created_at=clock.now))
    db.commit()
    token = csrf_token(client, "/admin/login")
    client.post("/admin/login", data={"email": "coach@example.com",
                                      "password": "correct horse battery", "csrf_token": token})
    return client


def test_pages_need_the_login(client):
    for path in ("/admin/webhooks", "/admin/embed"):
        assert client.get(path).status_code == 302


def test_add_deliver_see_and_send_again(app, admin_client, db, receiver, clock):
    token = csrf_token(admin_client, "/admin/webhooks")
    resp = admin_client.post("/admin/webhooks", data={
        "url": receiver.url, "events": ["subscriber.created"], "csrf_token": token})
    assert resp.status_code == 201
    page = resp.get_data(as_text=True)
    secret = re.search(r'<code class="secret"[^>]*>(whsec_[^<]+)</code>', page).group(1)
    endpoint = db.scalar(select(WebhookEndpoint))
    assert endpoint.secret != secret  # shown once, right after adding; stored encrypted

    sign_up(admin_client, "seen@example.com")
    rt = app.extensions["funnel"]
    receiver.reply(Reply(status=500, body=b"receiver is down"))
    Dispatcher(rt.sessions, rt.hook_settings).run(clock.now)
    page = admin_client.get("/admin/webhooks").get_data(as_text=True)
    assert "HTTP 500" in page and "receiver is down" in page and "subscriber.created" in page

    clock.advance(minutes=1)
    Dispatcher(rt.sessions, rt.hook_settings).run(clock.now)
    db.rollback()
    msg = db.scalar(select(WebhookMessage))
    assert msg.state == "delivered"
    token = csrf_token(admin_client, "/admin/webhooks")
    resp = admin_client.post(f"/admin/webhooks/deliveries/{msg.id}/again", data={"csrf_token": token})
    assert resp.status_code == 303
    Dispatcher(rt.sessions, rt.hook_settings).run(clock.now)
    got = receiver.wait_for(3)
    assert len(got) == 3 and len({r.headers["webhook-id"] for r in got}) == 1


def test_bad_urls_are_refused_on_the_page(app, admin_client, db):
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False
    token = csrf_token(admin_client, "/admin/webhooks")
    resp = admin_client.post("/admin/webhooks", data={
        "url": "http://169.254.169.254/latest", "events": ["subscriber.created"], "csrf_token": token})
    assert resp.status_code == 422
    assert "link-local" in resp.get_data(as_text=True)
    assert db.scalars(select(WebhookEndpoint)).all() == []
    resp = admin_client.post("/admin/webhooks", data={"url": "https://example.com/h",
                                                      "events": ["all"]})  # no CSRF token
    assert resp.status_code == 400
    assert db.scalars(select(WebhookEndpoint)).all() == []


def test_a_disabled_endpoint_shows_a_notice_and_can_be_enabled(admin_client, db, receiver):
    token = csrf_token(admin_client, "/admin/webhooks")
    admin_client.post("/admin/webhooks", data={"url": receiver.url, "events": ["all"],
                                               "csrf_token": token})
    endpoint = db.scalar(select(WebhookEndpoint))
    endpoint.state, endpoint.disabled_reason = "disabled", "Disabled: every attempt failed since …"
    db.commit()
    page = admin_client.get("/admin/webhooks").get_data(as_text=True)
    assert "is disabled" in page and "every attempt failed" in page
    resp = admin_client.post(f"/admin/webhooks/{endpoint.id}", data={
        "action": "enable", "csrf_token": csrf_token(admin_client, "/admin/webhooks")})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    db.expire_all()
    assert db.get(WebhookEndpoint, endpoint.id).state == "active"
