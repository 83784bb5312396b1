"""Every sign-up comes in one way: the landing page, the embedded form and the API
each write the same one intake row, and the worker takes every row in through one
function that checks it again by the fronts' own rules. A row that fails is kept
as refused, with its reason, and nobody is mailed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DataError

from funnel.accounts import api_keys as keys
from funnel.models import ApiKey, SignupIntake, Subscriber
from tests.conftest import deliver, post_signup

BLOG = "https://blog.runstronger.example"
COLUMNS = ("email", "first_name", "timezone", "at", "ip", "user_agent", "page", "referrer",
           "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "via",
           "attempts", "state", "refused_reason")


@pytest.fixture
def app_config(app_config):
    return {**app_config, "EMBED_ORIGINS": [BLOG]}


def api_key(app, scope: str = "subscribers:write", name: str = "zapier") -> str:
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        return keys.create_key(s, name, [scope], now=rt.clock())[1]


def intake(db) -> list[dict]:
    db.rollback()
    return [{c: getattr(r, c) for c in COLUMNS}
            for r in db.scalars(select(SignupIntake).order_by(SignupIntake.id))]


def count(db, model) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(model))


def test_the_embed_and_the_api_write_the_landing_pages_intake_row(app, client, db, clock, outbox):
    post_signup(client, "land@example.com", "Ann", tz="Europe/Paris", utm_source="club")
    client.post("/embed/subscribe", headers={"Origin": BLOG, "Referer": BLOG + "/post"},
                data={"email": "embed@example.com", "first_name": "Ann", "tz": "Europe/Paris",
                      "utm_source": "club"})
    resp = client.post("/api/v1/subscribers", headers={"Authorization": f"Bearer {api_key(app)}"},
                       json={"email": "api@example.com", "first_name": "Ann",
                             "time_zone": "Europe/Paris", "utm": {"source": "club"}})
    assert resp.status_code == 202
    assert resp.get_json()["status"] == "accepted"
    # Nothing is made in the request: one row each, and no subscriber yet.
    assert count(db, Subscriber) == 0
    land, embed, api = intake(db)
    same = ("first_name", "timezone", "at", "utm_source", "attempts", "state", "refused_reason")
    for row in (embed, api):
        assert {c: row[c] for c in same} == {c: land[c] for c in same}
    assert (land["via"], embed["via"], api["via"]) == ("direct", "embed", "api")
    assert (land["state"], land["at"]) == ("waiting", clock.now)
    assert embed["page"] == BLOG + "/post" and embed["referrer"] == "blog.runstronger.example"
    assert api["user_agent"] == "API key zapier"
    # The worker's one step makes all three the same kind of pending sign-up.
    report = deliver(app)
    assert report.taken_in == 3
    db.rollback()
    subs = db.scalars(select(Subscriber).order_by(Subscriber.id)).all()
    assert [(s.email, s.status, s.first_name, s.timezone, s.utm_source) for s in subs] == [
        (e, "pending", "Ann", "Europe/Paris", "club")
        for e in ("land@example.com", "embed@example.com", "api@example.com")]
    assert all(len(outbox.to(s.email)) == 1 for s in subs)


BAD_ROWS = [
    ({"email": "not-an-email"}, "address fails"),
    ({"email": "runner@example.com\r\nBcc: everyone@example.com"}, "address fails"),
    ({"email": "runner@example.com\r\n"}, "not in the form"),  # CRLF at the end
    ({"email": "Runner@Example.com"}, "not in the form"),  # not as the fronts store it
    ({"email": "a@b@example.com"}, "address fails"),
    ({"email": "x" * 250 + "@example.com"}, "address fails"),
    ({"timezone": "Mars/Olympus"}, "time zone"),
    ({"timezone": "Factory"}, "time zone"),
    ({"first_name": "N" * 81}, "first name fails"),
    ({"first_name": "Ann\r\nBcc: x@example.com"}, "first name fails"),
    ({"first_name": "  Ann  "}, "first name is not in the form"),
]


@pytest.mark.parametrize("bad, reason", BAD_ROWS)
def test_a_malformed_intake_row_is_refused_and_never_mailed(app, db, clock, outbox, bad, reason):
    good = {"email": "fine@example.com", "first_name": "Sam", "timezone": "Europe/London",
            "at": clock.now, "via": "direct"}
    # Written straight into the table, as a bug or a restore could: no front checked it.
    # (A real engine connection, so an over-long value is kept as PostgreSQL allows.)
    engine = app.extensions["funnel"].engine
    try:
        with engine.begin() as conn:
            conn.execute(insert(SignupIntake), [{**good, **bad}, good])
    except DataError:
        # PostgreSQL keeps the column sizes itself: the over-long row never gets in.
        assert engine.dialect.name == "postgresql" and max(len(v) for v in bad.values()) > 80
        return
    report = deliver(app)
    assert report.taken_in == 1  # the good row still went through
    rows = intake(db)
    assert len(rows) == 1 and rows[0]["state"] == "refused"
    assert reason in rows[0]["refused_reason"]
    # The reason never repeats the address (the log and the admin are not for it).
    assert "email" not in bad or bad["email"].strip() not in rows[0]["refused_reason"]
    db.rollback()
    assert db.scalars(select(Subscriber.email)).all() == ["fine@example.com"]
    assert len(outbox) == 1 and len(outbox.to("fine@example.com")) == 1
    # A refused row stays refused: the next passes neither retry nor mail it.
    clock.advance(hours=1)
    assert deliver(app).taken_in == 0
    assert len(outbox) == 1 and intake(db)[0]["state"] == "refused"


def test_the_database_refuses_an_unknown_front_or_state(app, clock):
    from sqlalchemy.exc import IntegrityError

    good = {"email": "fine@example.com", "timezone": "UTC", "at": datetime(2026, 1, 1, tzinfo=UTC)}
    for bad in ({"via": "fax"}, {"state": "maybe"}):
        with pytest.raises(IntegrityError), app.extensions["funnel"].engine.begin() as conn:
            conn.execute(insert(SignupIntake), [{**good, **bad}])


def test_api_sign_up_needs_its_key_scope_still(app, client, db):
    token = api_key(app, "subscribers:read", "reader")
    resp = client.post("/api/v1/subscribers", headers={"Authorization": f"Bearer {token}"},
                       json={"email": "x@example.com"})
    assert resp.status_code == 403 and count(db, SignupIntake) == 0
    assert count(db, ApiKey) == 1
