"""Issue 27's small input findings: invisible format characters in names, NUL bytes
that PostgreSQL cannot store, API dates past year 9999, and IPv6 webhook addresses
that carry a refused IPv4 address. Each runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.accounts import api_keys as keys
from funnel.hooks import manage
from funnel.hooks.secret_box import box_from_config
from funnel.models import Subscriber, WebhookEndpoint
from tests.conftest import sign_up
from tests.security_support import subscriber

BLOG = "https://blog.runstronger.example"
PROBLEM = "application/problem+json"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "EMBED_ORIGINS": [BLOG], "API_RATELIMIT": "1000 per minute"}


def count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count(Subscriber.id))) or 0


def api_key(app) -> dict[str, str]:
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        secret = keys.create_key(s, "probe", ["all"], now=rt.clock())[1]
    return {"Authorization": f"Bearer {secret}"}


# -- invisible format characters (Unicode category Cf) ----------------------------------

@pytest.mark.parametrize("name", ["\ufeffPat", "Pa\u200bt", "Pat\u00ad", "Pat\u2060",
                                  "Pat\u200d", "\U000e0041Pat"],
                         ids=["BOM", "ZWSP", "soft hyphen", "word joiner", "ZWJ", "tag A"])
def test_names_with_invisible_format_characters_are_refused(client, db, name):
    resp = sign_up(client, "pat@example.com", name)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "hidden or control character" in html and f"U+{ord(name.strip('Pat')[0]):04X}" in html
    assert count(db) == 0


# -- NUL bytes -------------------------------------------------------------------------

def test_nul_in_the_embedded_forms_utm_source_is_a_clear_400(client, db):
    resp = client.post("/embed/subscribe", headers={"Origin": BLOG},
                       data={"email": "nul@example.com", "utm_source": "blog\x00x"})
    assert resp.status_code == 400
    assert "NUL character" in resp.get_data(as_text=True) and "utm_source" in resp.get_data(
        as_text=True)
    assert count(db) == 0


@pytest.mark.parametrize("body", [
    {"email": "nul@example.com", "source": "zap\x00ier"},
    {"email": "nul@example.com", "consent_source": "paper\x00"},
])
def test_nul_in_api_fields_is_a_400_problem(app, client, db, body):
    resp = client.post("/api/v1/subscribers", json=body, headers=api_key(app))
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    assert "NUL character" in resp.get_json()["detail"]
    assert count(db) == 0


def test_nul_in_an_api_import_is_a_400_problem(app, client, db):
    resp = client.post("/api/v1/subscribers/import", headers=api_key(app), json={
        "consent_source": "Paper sheet\x00", "confirmed": False,
        "subscribers": [{"email": "a@example.com"}]})
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    assert count(db) == 0


def test_nul_in_an_api_path_or_filter_is_a_400_problem(app, client):
    headers = api_key(app)
    for path in ("/api/v1/subscribers/abc%00def", "/api/v1/subscribers?status=confirmed%00"):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 400 and resp.mimetype == PROBLEM, path
        assert "NUL character" in resp.get_json()["detail"]


def test_nul_in_the_admin_subscriber_search_is_a_400(logged_in):
    resp = logged_in.get("/admin/subscribers?q=a%00b")
    assert resp.status_code == 400
    assert "NUL character" in resp.get_data(as_text=True)


def test_nul_in_a_landing_page_utm_is_not_counted_and_breaks_nothing(app, client, db):
    # Flask refuses it (400); the fast page layer, which answers repeat visits
    # without Flask, serves the page and leaves the value out of the count.
    for _ in range(3):
        assert client.get("/free-plan?utm_source=x%00y").status_code in (200, 400)
    app.extensions["funnel_visits"].flush()  # PostgreSQL refused the whole batch before
    assert sign_up(client, "after@example.com").status_code == 303


# -- API dates out of range ----------------------------------------------------------

FAR = "9999-12-31T23:59:59-14:00"


def test_a_pause_past_year_9999_is_a_400_problem(app, client, db):
    headers = api_key(app)
    made = client.post("/api/v1/subscribers/import", headers=headers, json={
        "consent_source": "Paper sign-up sheet, Leeds 10k expo", "confirmed": True,
        "subscribers": [{"email": "far@example.com"}]})
    assert made.status_code == 200, made.get_data(as_text=True)
    public_id = subscriber(db, "far@example.com").public_id
    resp = client.patch(f"/api/v1/subscribers/{public_id}", json={"paused_until": FAR},
                        headers=headers)
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    assert "out of range" in resp.get_json()["detail"]
    assert subscriber(db, "far@example.com").paused_until is None


@pytest.mark.parametrize("value", [FAR, "0001-01-01T00:00:00+14:00"])
def test_a_created_before_filter_out_of_range_is_a_400_problem(app, client, value):
    resp = client.get("/api/v1/subscribers", query_string={"created_before": value},
                      headers=api_key(app))
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    assert "created_before is out of range" in resp.get_json()["detail"]


# -- webhook addresses carrying an IPv4 address -----------------------------------------

@pytest.mark.parametrize("url", [
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::7f00:1]/hook",  # local-use NAT64 of 127.0.0.1
    "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::ffff:169.254.169.254]/hook",  # IPv4-mapped
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
])
def test_ipv6_forms_of_refused_ipv4_addresses_are_refused(app, db, url):
    rt = app.extensions["funnel"]
    with (pytest.raises(manage.EndpointError, match="loopback, private or link-local"),
          Session(rt.engine) as s):
        manage.add_endpoint(s, url, ["all"], now=rt.clock(), allow_private=False,
                            box=box_from_config(app.config))
    db.rollback()
    assert db.scalars(select(WebhookEndpoint)).all() == []


@pytest.mark.parametrize("url", ["http://[64:ff9b::808:808]/hook", "http://[2002:808:808::1]/hook"])
def test_the_same_forms_of_public_addresses_are_accepted(app, db, url):
    rt = app.extensions["funnel"]
    with Session(rt.engine) as s:
        manage.add_endpoint(s, url, ["all"], now=rt.clock(), allow_private=False,
                            box=box_from_config(app.config))
    db.rollback()
    assert [e.url for e in db.scalars(select(WebhookEndpoint))] == [url]


def test_the_worker_does_not_connect_to_a_nat64_metadata_address(app, db):
    """Registered while private addresses were allowed, requested after: the check
    right before the request refuses it too."""
    from funnel.hooks.dispatch import Dispatcher, HookSettings
    from funnel.subscribers import actions as subscribers

    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        manage.add_endpoint(s, "http://[64:ff9b::a9fe:a9fe]/latest", ["all"], now=rt.clock(),
                            allow_private=True, box=box_from_config(app.config))
        subscribers.subscribe(s, email="ssrf@example.com", first_name=None,
                              timezone="Europe/London", meta=subscribers.SignupMeta(),
                              now=rt.clock())
    settings = HookSettings(**{**HookSettings.from_config(app.config).__dict__,
                               "allow_private": False})
    report = Dispatcher(rt.sessions, settings).run(rt.clock())
    assert report.retrying == 1
    from funnel.models import WebhookMessage

    db.rollback()
    [msg] = db.scalars(select(WebhookMessage)).all()
    assert msg.state == "pending" and "169.254.169.254" in msg.error
