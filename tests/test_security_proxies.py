"""TRUSTED_PROXIES: behind a reverse proxy the app sees each visitor's own address;
without it, a forged X-Forwarded-For changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel.models import ConsentRecord
from tests.conftest import csrf_token, take_in

PROXY = "10.0.0.2"


def sign_up_from(client, email, forwarded_for, proto="https"):
    token = csrf_token(client)
    return client.post(
        "/free-plan", data={"email": email, "csrf_token": token},
        environ_base={"REMOTE_ADDR": PROXY},
        headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": proto,
                 "X-Forwarded-Host": "runstronger.example",
                 # Over https, CSRF protection also wants a same-site Referer, as browsers send.
                 "Referer": "https://runstronger.example/free-plan"})


def signup_ip(app, db, email) -> str:
    take_in(app)
    db.rollback()
    rec = db.scalar(select(ConsentRecord).join(ConsentRecord.subscriber)
                    .where(ConsentRecord.action == "signup")
                    .where(ConsentRecord.subscriber.has(email=email)))
    return rec.ip


@pytest.fixture
def app_config(app_config):
    return {**app_config, "TRUSTED_PROXIES": 1, "RATELIMIT_SIGNUP": "2 per minute"}


def test_consent_records_the_visitor_behind_the_proxy(client, db):
    assert sign_up_from(client, "ann@example.com", "203.0.113.9").status_code == 303
    assert signup_ip(client.application, db, "ann@example.com") == "203.0.113.9"
    # Only the hop our proxy added is believed: a forged first entry is ignored.
    sign_up_from(client, "bob@example.com", "6.6.6.6, 203.0.113.10")
    assert signup_ip(client.application, db, "bob@example.com") == "203.0.113.10"


def test_visitors_behind_one_proxy_have_their_own_limits(client):
    for visitor in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        statuses = [sign_up_from(client, f"{visitor}-{i}@example.com", visitor).status_code
                    for i in range(2)]
        assert statuses == [303, 303], visitor


def test_the_setting_is_read_from_the_environment(monkeypatch, app_config):
    from funnel import create_app

    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    config = {k: v for k, v in app_config.items() if k != "TRUSTED_PROXIES"}
    app = create_app(config)
    assert app.config["TRUSTED_PROXIES"] == 2
    app.extensions["funnel"].engine.dispose()


@pytest.mark.parametrize("hops", [0])
def test_without_trusted_proxies_the_header_is_ignored(app_config, hops, db):
    from funnel import create_app

    app = create_app({**app_config, "TRUSTED_PROXIES": hops})
    client = app.test_client()
    assert sign_up_from(client, "cat@example.com", "203.0.113.9").status_code == 303
    assert signup_ip(client.application, db, "cat@example.com") == PROXY
    app.extensions["funnel"].engine.dispose()
