"""Mail scanners open every link: the confirmation link shows a page with one
button, and only that button (a CSRF-protected POST) confirms the address."""

from __future__ import annotations

import re

from funnel.runtime import make_worker
from tests.conftest import csrf_token, sign_up
from tests.security_support import personal_path, subscriber

EMAIL = "pat@example.com"


def text(resp) -> str:
    return re.sub(r"\s+", " ", resp.get_data(as_text=True))


def test_opening_the_link_changes_nothing(app, client, db):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    for _ in range(3):  # a scanner, then a second scanner, then a preview pane
        resp = client.get(path)
        assert resp.status_code == 200
        assert client.head(path).status_code == 200
    assert subscriber(db, EMAIL).status == "pending"
    assert subscriber(db, EMAIL).consents[-1].action != "confirm"
    page = text(resp)
    assert len(re.findall(r"<form[^>]*method=\"post\"", page)) == 1
    assert len(re.findall(r"<button", page)) == 1
    assert re.search(r"<button[^>]*>\s*Yes, confirm my address\s*</button>", page)
    assert 'name="csrf_token"' in page


def test_the_button_confirms(app, client, db):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    resp = client.post(path, data={"csrf_token": csrf_token(client, path)})
    assert resp.status_code == 200
    assert "You're in" in text(resp)
    sub = subscriber(db, EMAIL)
    assert sub.status == "confirmed" and sub.consents[-1].action == "confirm"


def test_a_post_without_the_csrf_token_changes_nothing(app, client, db):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    assert client.post(path).status_code == 400
    assert client.post(path, data={"csrf_token": "forged"}).status_code == 400
    assert subscriber(db, EMAIL).status == "pending"


def test_a_forged_link_is_refused_on_both_methods(app, client, db):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    assert client.get(path + "x").status_code == 400
    token = csrf_token(client, path)
    assert client.post(path + "x", data={"csrf_token": token}).status_code == 400
    assert subscriber(db, EMAIL).status == "pending"


def test_an_expired_link_offers_a_new_one(app, client, db, clock):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    clock.advance(days=8)
    resp = client.get(path)
    assert resp.status_code == 410 and "Send me a new link" in text(resp)
    token = csrf_token(client)
    assert client.post(path, data={"csrf_token": token}).status_code == 410
    assert subscriber(db, EMAIL).status == "pending"


def test_already_confirmed_does_not_promise_an_email_that_already_went(app, client, db, clock):
    sign_up(client, EMAIL)
    path = personal_path(app, db, EMAIL, "confirm")
    client.post(path, data={"csrf_token": csrf_token(client, path)})
    # Confirmed once: opening the link again says so and promises nothing.
    assert "already confirmed" in text(client.get(path))
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    clock.advance(days=3)
    again = text(client.get(path))
    assert "already confirmed" in again
    assert "on its way" not in again
    again = text(client.post(path, data={"csrf_token": csrf_token(client)}))
    assert "already confirmed" in again and "on its way" not in again
