"""Webhook signing secrets (issue 27): encrypted at rest with a key derived from
SECRET_KEY, shown once at creation, and shown again only after the password."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from funnel.hooks.dispatch import Dispatcher
from funnel.hooks.secret_box import SecretBox, SecretUnreadable
from funnel.models import WebhookEndpoint
from tests.admin_support import PASSWORD
from tests.conftest import TEST_SECRET, csrf_token, sign_up
from tests.webhook_support import start_receiver

SECRET = re.compile(r'<code class="secret"[^>]*>(whsec_[^<]+)</code>')


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WEBHOOKS_ALLOW_PRIVATE": True, "WEBHOOKS_TIMEOUT": 1.0}


@pytest.fixture
def receiver():
    rec, server = start_receiver()
    yield rec
    server.shutdown()
    server.server_close()


def add(client, url: str):
    token = csrf_token(client, "/admin/webhooks")
    return client.post("/admin/webhooks", data={"url": url, "events": ["all"],
                                               "csrf_token": token})


def reveal(client, endpoint_id: int, password: str):
    token = csrf_token(client, "/admin/webhooks")
    return client.post(f"/admin/webhooks/{endpoint_id}/reveal",
                       data={"password": password, "csrf_token": token})


def test_the_secret_is_stored_encrypted_and_still_signs(app, logged_in, db, receiver, clock):
    resp = add(logged_in, receiver.url)
    assert resp.status_code == 201
    shown = SECRET.search(resp.get_data(as_text=True)).group(1)
    db.rollback()
    stored = db.scalar(select(WebhookEndpoint.secret))
    assert "whsec_" not in stored and shown[6:20] not in stored  # a dump gives nothing away
    assert SecretBox([TEST_SECRET]).open(stored) == shown
    with pytest.raises(SecretUnreadable):
        SecretBox(["another-key"]).open(stored)

    sign_up(logged_in, "signed@example.com")
    rt = app.extensions["funnel"]
    Dispatcher(rt.sessions, rt.hook_settings).run(clock.now)
    [got] = receiver.wait_for(1)
    assert got.verify(shown)["type"] == "subscriber.created"  # receivers keep working


def test_the_secret_is_shown_once_then_only_after_the_password(logged_in, db, receiver):
    first = add(logged_in, receiver.url)
    shown = SECRET.search(first.get_data(as_text=True)).group(1)
    page = logged_in.get("/admin/webhooks").get_data(as_text=True)
    assert shown not in page and "whsec_" not in page
    db.rollback()
    endpoint_id = db.scalar(select(WebhookEndpoint.id))

    wrong = reveal(logged_in, endpoint_id, "not my password")
    assert wrong.status_code == 403
    assert shown not in wrong.get_data(as_text=True)
    assert "password is not right" in wrong.get_data(as_text=True)

    right = reveal(logged_in, endpoint_id, PASSWORD)
    assert right.status_code == 200 and shown in right.get_data(as_text=True)
    assert shown not in logged_in.get("/admin/webhooks").get_data(as_text=True)


def test_a_secret_stored_in_plain_text_is_sealed_by_the_worker(app, logged_in, db, receiver,
                                                               clock):
    add(logged_in, receiver.url)
    db.execute(update(WebhookEndpoint).values(secret="whsec_" + "A" * 44))
    db.commit()
    rt = app.extensions["funnel"]
    Dispatcher(rt.sessions, rt.hook_settings).run(clock.now)
    db.rollback()
    stored = db.scalar(select(WebhookEndpoint.secret))
    assert not stored.startswith("whsec_")
    assert SecretBox([TEST_SECRET]).open(stored) == "whsec_" + "A" * 44


def test_rotating_secret_key_keeps_old_secrets_readable():
    old = SecretBox(["old-key"]).seal("whsec_abc")
    assert SecretBox(["new-key", "old-key"]).open(old) == "whsec_abc"
    assert SecretBox(["new-key"]).seal("x") != SecretBox(["old-key"]).seal("x")
