"""The JSON API: keys, scopes, every operation, problem details, rate limits, logs."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from funnel.accounts import api_keys as keys
from funnel.models import ApiKey, ConsentRecord, Subscriber
from funnel.subscribers import privacy
from tests.conftest import deliver, take_in

PROBLEM = "application/problem+json"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "API_RATELIMIT": "1000 per minute"}


def make_key(app, *scopes: str, name: str = "zapier") -> str:
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        return keys.create_key(s, name, list(scopes or ["all"]), now=rt.clock())[1]


@pytest.fixture
def key(app) -> str:
    return make_key(app)


def auth(k: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {k}"}


def signup(client, key, email="api.runner@example.com", **extra):
    """The API's sign-up, then the worker's intake step that makes the subscriber."""
    resp = client.post("/api/v1/subscribers", json={"email": email, **extra}, headers=auth(key))
    take_in(client.application)
    return resp


def imported(client, key, *emails, confirmed=False):
    resp = client.post("/api/v1/subscribers/import", headers=auth(key), json={
        "consent_source": "Paper sign-up sheet, Leeds 10k expo, 2026-10-04",
        "confirmed": confirmed, "subscribers": [{"email": e} for e in emails]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def sub_id(db, email: str) -> str:
    db.rollback()
    return db.scalar(select(Subscriber.public_id).where(Subscriber.email == email))


# -- keys ----------------------------------------------------------------------------

def test_cli_creates_a_key_once_lists_it_and_revokes_it(app, runner, client, db):
    result = runner.invoke(args=["api-key", "create", "crm", "--scope", "subscribers:read"])
    assert result.exit_code == 0, result.output
    full = result.stdout.strip().splitlines()[-1]
    assert full.startswith("fk_")
    stored = db.scalar(select(ApiKey))
    assert full.split("_")[-1] not in stored.key_hash and stored.key_hash != full  # only a hash
    listed = runner.invoke(args=["api-key", "list"]).output
    assert "crm" in listed and f"fk_{stored.prefix}_…" in listed and full not in listed
    assert client.get("/api/v1/subscribers", headers=auth(full)).status_code == 200
    assert runner.invoke(args=["api-key", "revoke", "crm"]).exit_code == 0
    resp = client.get("/api/v1/subscribers", headers=auth(full))
    assert resp.status_code == 401 and resp.mimetype == PROBLEM
    assert "revoked" in resp.get_json()["detail"]


def test_cli_refuses_bad_scopes_and_names(runner, db):
    assert "unknown scope" in runner.invoke(args=["api-key", "create", "x", "--scope", "root"]).output
    assert "choose at least one scope" in runner.invoke(args=["api-key", "create", "x"]).output
    assert "the name must be" in runner.invoke(args=["api-key", "create", "\n", "--scope", "all"]).output
    assert db.scalars(select(ApiKey)).all() == []


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic Zm9vOmJhcg==",
                                    "Bearer fk_AAAAAAAAAAAA_" + "a" * 43])
def test_without_a_live_key_every_operation_is_401_problem(client, key, header):
    headers = {"Authorization": header} if header else {}
    for method, path in (("get", "/api/v1/subscribers"), ("post", "/api/v1/subscribers"),
                         ("get", "/api/v1/stats"), ("delete", "/api/v1/subscribers/abc")):
        resp = getattr(client, method)(path, headers=headers, json={})
        assert resp.status_code == 401, (method, path)
        assert resp.mimetype == PROBLEM
        body = resp.get_json()
        assert body["status"] == 401 and body["title"] == "Unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_in_the_query_string_is_not_accepted(client, key):
    assert client.get(f"/api/v1/subscribers?api_key={key}").status_code == 401


def test_scopes_are_enforced(app, client, db):
    reader = make_key(app, "subscribers:read", name="reader")
    resp = signup(client, reader)
    assert resp.status_code == 403 and "subscribers:write" in resp.get_json()["detail"]
    assert client.get("/api/v1/stats", headers=auth(reader)).status_code == 403
    assert db.scalars(select(Subscriber)).all() == []


# -- sign-up and import ----------------------------------------------------------------

def test_signup_is_double_opt_in(client, key, db, outbox):
    resp = signup(client, key, first_name="Ana", time_zone="Europe/Madrid",
                  source="https://crm.example/forms/7", utm={"source": "crm"})
    assert resp.status_code == 202 and resp.get_json()["status"] == "accepted"
    sub = db.scalar(select(Subscriber))
    assert (sub.status, sub.timezone, sub.utm_source) == ("pending", "Europe/Madrid", "crm")
    consent = db.scalar(select(ConsentRecord))
    assert consent.page == "https://crm.example/forms/7" and "zapier" in consent.user_agent
    deliver(client.application)  # the worker sends what the request queued
    [mail] = outbox.to("api.runner@example.com")
    assert "confirm" in outbox.text(mail).lower()  # a confirmation, not the plan


def test_suppressed_and_known_addresses_get_the_same_answer(app, client, key, db, outbox, clock):
    signup(client, key, email="erased@example.com")
    deliver(client.application)  # the worker sends the first sign-up's confirmation
    with app.extensions["funnel"].sessions() as s:
        privacy.erase(s, privacy.find_by_email(s, "erased@example.com"), clock.now)
    first = signup(client, key, email="new@example.com")
    suppressed = signup(client, key, email="erased@example.com")
    assert suppressed.status_code == first.status_code == 202
    assert suppressed.get_json() == first.get_json()
    db.rollback()
    assert privacy.find_by_email(db, "erased@example.com") is None
    deliver(client.application)
    assert len(outbox.to("erased@example.com")) == 1  # only the first sign-up got mail


@pytest.mark.parametrize("body, pointer", [
    ({}, ""), ({"email": 5}, "/email"), ({"email": "a@example.com", "admin": True}, ""),
    ({"email": "a@example.com", "first_name": "x" * 81}, "/first_name"),
    ({"email": "not an address"}, "/email"), ({"email": "a@example.com", "time_zone": "Mars/Base"}, "/time_zone"),
    ({"email": "a@example.com", "first_name": "Eve\r\nBcc: x"}, "/first_name"),
])
def test_bad_signups_are_422_problems_and_change_nothing(client, key, db, body, pointer):
    resp = client.post("/api/v1/subscribers", json=body, headers=auth(key))
    assert resp.status_code == 422 and resp.mimetype == PROBLEM
    assert pointer in [e["pointer"] for e in resp.get_json()["errors"]]
    assert db.scalars(select(Subscriber)).all() == []


def test_non_json_bodies_are_refused(client, key):
    resp = client.post("/api/v1/subscribers", data="email=a@example.com", headers=auth(key),
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415 and resp.mimetype == PROBLEM
    resp = client.post("/api/v1/subscribers", data="{nope", headers=auth(key),
                       content_type="application/json")
    assert resp.status_code == 400 and "not valid JSON" in resp.get_json()["detail"]


def test_import_keeps_the_stated_source_and_refuses_suppressed_silently(app, client, key, db, clock):
    signup(client, key, email="gone@example.com")
    with app.extensions["funnel"].sessions() as s:
        privacy.erase(s, privacy.find_by_email(s, "gone@example.com"), clock.now)
    result = imported(client, key, "a@example.com", "b@example.com", "a@example.com",
                      "gone@example.com", "broken", confirmed=True)
    assert result["received"] == 5 and result["added"] == 2 and result["repeated"] == 1
    assert result["refused"] == 1 and [b["index"] for b in result["bad"]] == [4]
    assert "gone" not in str(result["bad"])
    db.rollback()
    sub = privacy.find_by_email(db, "a@example.com")
    assert sub.status == "confirmed"
    record = db.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == sub.id))
    assert "Leeds 10k expo" in record.page and "zapier" in record.page
    resp = client.post("/api/v1/subscribers/import", headers=auth(key),
                       json={"consent_source": "short", "subscribers": [{"email": "c@example.com"}]})
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["pointer"] == "/consent_source"


# -- read, update, unsubscribe, erase -----------------------------------------------------

def test_read_update_pause_resume_unsubscribe_erase(client, key, db, clock):
    imported(client, key, "life@example.com", confirmed=True)
    sid = sub_id(db, "life@example.com")
    url = f"/api/v1/subscribers/{sid}"
    got = client.get(url, headers=auth(key)).get_json()
    assert (got["email"], got["status"], got["paused_until"]) == ("life@example.com", "confirmed", None)

    resp = client.patch(url, headers=auth(key), json={"first_name": "Lee", "time_zone": "Asia/Tokyo",
                                                      "paused_until": "indefinite"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert (resp.get_json()["first_name"], resp.get_json()["time_zone"]) == ("Lee", "Asia/Tokyo")
    assert resp.get_json()["paused_until"] == "indefinite"
    until = (clock.now.replace(microsecond=0) + __import__("datetime").timedelta(days=7)).isoformat()
    assert client.patch(url, headers=auth(key), json={"paused_until": until}).get_json()["paused_until"]
    assert client.patch(url, headers=auth(key), json={"paused_until": None}).get_json()["paused_until"] is None

    bad = client.patch(url, headers=auth(key), json={"time_zone": "Nowhere/Land", "first_name": "Zed"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["pointer"] == "/time_zone"
    assert client.get(url, headers=auth(key)).get_json()["first_name"] == "Lee"  # nothing changed
    past = client.patch(url, headers=auth(key), json={"paused_until": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422

    resp = client.post(url + "/unsubscribe", headers=auth(key))
    assert resp.status_code == 200 and resp.get_json()["status"] == "unsubscribed"
    conflict = client.patch(url, headers=auth(key), json={"paused_until": "indefinite"})
    assert conflict.status_code == 409 and conflict.mimetype == PROBLEM

    assert client.delete(url, headers=auth(key)).status_code == 204
    missing = client.get(url, headers=auth(key))
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert client.delete(url, headers=auth(key)).status_code == 404


def test_list_pages_with_a_cursor_and_filters(client, key, db, clock):
    imported(client, key, *[f"p{i:02d}@example.com" for i in range(7)], confirmed=True)
    clock.advance(hours=1)
    imported(client, key, "late@example.com")
    seen, cursor = [], None
    while True:
        q = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = client.get("/api/v1/subscribers" + q, headers=auth(key)).get_json()
        seen += [s["email"] for s in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 8
    pending = client.get("/api/v1/subscribers?status=pending", headers=auth(key)).get_json()
    assert [s["email"] for s in pending["data"]] == ["late@example.com"]
    after = (clock.now - __import__("datetime").timedelta(minutes=30)).isoformat()
    recent = client.get("/api/v1/subscribers", query_string={"created_after": after},
                        headers=auth(key)).get_json()
    assert [s["email"] for s in recent["data"]] == ["late@example.com"]
    found = client.get("/api/v1/subscribers?email_contains=P03", headers=auth(key)).get_json()
    assert [s["email"] for s in found["data"]] == ["p03@example.com"]
    for bad in ("limit=0", "limit=x", "status=vip", "cursor=!!!", "created_after=yesterday"):
        resp = client.get(f"/api/v1/subscribers?{bad}", headers=auth(key))
        assert resp.status_code == 400 and resp.mimetype == PROBLEM, bad


def test_stats(client, key):
    imported(client, key, "s1@example.com", "s2@example.com", confirmed=True)
    signup(client, key, email="s3@example.com")
    stats = client.get("/api/v1/stats", headers=auth(key)).get_json()
    assert stats["subscribers"]["confirmed"] == 2 and stats["subscribers"]["pending"] == 1
    assert stats["subscribers"]["total"] == 3
    assert stats["last_30_days"]["signups"] == 1 and stats["last_30_days"]["imported"] == 2


# -- limits, logs, the document ------------------------------------------------------------

def test_each_key_has_its_own_rate_limit(app, client, db):
    app.config["API_RATELIMIT"] = "3 per minute"
    busy, other = make_key(app, name="busy"), make_key(app, name="other")
    codes = [client.get("/api/v1/stats", headers=auth(busy)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = client.get("/api/v1/stats", headers=auth(busy))
    assert resp.mimetype == PROBLEM and resp.get_json()["status"] == 429
    assert client.get("/api/v1/stats", headers=auth(other)).status_code == 200


def test_api_keys_never_appear_in_logs(app, client, key, caplog):
    caplog.set_level(logging.DEBUG)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    signup(client, key)
    client.get("/api/v1/subscribers", headers=auth(key))
    client.get("/api/v1/subscribers", headers=auth(key[:-1] + "x"))  # a wrong key
    client.post("/api/v1/subscribers", data="{", headers=auth(key), content_type="application/json")
    secret = key.split("_")[-1]
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert logged  # something was logged, so the check below means something
    assert secret not in logged and key not in logged


def test_openapi_document_is_served_without_a_key(client):
    resp = client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"] == "3.1.0"
    assert {"/subscribers", "/subscribers/import", "/subscribers/{id}",
            "/subscribers/{id}/unsubscribe", "/stats"} <= set(doc["paths"])


def test_topics_read_and_changed_like_the_preference_page(client, key, db, clock, run_worker, outbox):
    imported(client, key, "topics@example.com", confirmed=True)
    signup(client, key, email="pending.topics@example.com")
    sid = sub_id(db, "topics@example.com")
    url = f"/api/v1/subscribers/{sid}"
    assert client.get(url, headers=auth(key)).get_json()["topics"] == {"plan": True, "newsletter": True}

    off = client.patch(url, headers=auth(key), json={"topics": {"plan": False}})
    assert off.status_code == 200, off.get_data(as_text=True)
    assert off.get_json()["topics"] == {"plan": False, "newsletter": True}
    assert off.get_json()["status"] == "confirmed"
    clock.advance(days=1)
    run_worker()
    assert outbox.to("topics@example.com") == []  # the plan is off: no plan email

    on = client.patch(url, headers=auth(key), json={"topics": {"plan": True}})
    assert on.get_json()["topics"] == {"plan": True, "newsletter": True}
    clock.advance(days=1)
    run_worker()
    assert [m["Subject"][:6] for m in outbox.to("topics@example.com")] == ["Part 1"]

    unknown = client.patch(url, headers=auth(key), json={"topics": {"podcast": True}})
    assert unknown.status_code == 422 and unknown.mimetype == PROBLEM
    pending = client.patch(f"/api/v1/subscribers/{sub_id(db, 'pending.topics@example.com')}",
                           headers=auth(key), json={"topics": {"plan": False}, "first_name": "Pat"})
    assert pending.status_code == 409 and pending.mimetype == PROBLEM
    db.rollback()
    pat = db.scalar(select(Subscriber).where(Subscriber.email == "pending.topics@example.com"))
    assert pat.first_name != "Pat" and pat.wants_plan  # nothing changed

    both = client.patch(url, headers=auth(key), json={"topics": {"plan": False, "newsletter": False}})
    assert both.get_json()["status"] == "unsubscribed"
    db.rollback()
    withdrawn = db.scalars(select(ConsentRecord.action).join(Subscriber)
                           .where(Subscriber.email == "topics@example.com")).all()
    assert "withdraw" in withdrawn


def test_a_search_with_a_nul_byte_is_a_400_problem(client, key):
    # Found by Schemathesis: PostgreSQL refuses NUL in a string, which was a 500.
    resp = client.get("/api/v1/subscribers?email_contains=a%00b", headers=auth(key))
    assert resp.status_code == 400 and resp.mimetype == PROBLEM
    assert "NUL character" in resp.get_json()["detail"]  # funnel/web/nul_guard.py
