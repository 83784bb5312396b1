"""Sign-ups waiting in the intake (issue 27): the privacy export and erasure cover
them, and they cannot pile up without bound while the worker is away."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from funnel.models import SignupIntake, Subscriber
from tests.conftest import post_signup, sign_up_and_confirm, take_in

EMAIL = "waiting.runner@example.com"
AGENT = "ProbeBrowser/27.0 (intake)"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "SIGNUP_INTAKE_MAX": 3}


def waiting(db, email: str | None = None) -> int:
    db.rollback()
    q = select(func.count()).select_from(SignupIntake)
    if email:
        q = q.where(SignupIntake.email == email)
    return db.scalar(q) or 0


def test_the_subscribers_export_and_erasure_cover_their_waiting_sign_up(
        app, client, db, outbox, run_worker):
    sign_up_and_confirm(client, outbox, EMAIL, "Wren")
    run_worker()
    prefs = outbox.link(outbox.to(EMAIL)[-1], "preferences")
    # The same person asks again while the worker is away: the row waits.
    client.environ_base["HTTP_USER_AGENT"] = AGENT
    assert post_signup(client, EMAIL, "Wren").status_code == 303
    assert waiting(db, EMAIL) == 1

    data = json.loads(client.get(prefs + "/data.json").get_data(as_text=True))
    [row] = data["waiting_signups"]
    assert row["email"] == EMAIL and row["user_agent"] == AGENT and row["ip"] == "127.0.0.1"

    from tests.conftest import csrf_token

    erase = prefs + "/erase"
    resp = client.post(erase, data={"csrf_token": csrf_token(client, erase), "confirm": "erase"})
    assert resp.status_code == 200
    assert waiting(db, EMAIL) == 0
    take_in(app)  # nothing comes back
    db.rollback()
    assert db.scalar(select(Subscriber).where(Subscriber.email == EMAIL)) is None


def test_an_address_only_in_the_intake_can_be_exported_and_erased(app, client, runner, db):
    client.environ_base["HTTP_USER_AGENT"] = AGENT
    assert post_signup(client, EMAIL, "Wren").status_code == 303
    exported = runner.invoke(args=["subscribers", "export-data", EMAIL])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.stdout)
    assert data["profile"] is None and data["waiting_signups"][0]["user_agent"] == AGENT

    erased = runner.invoke(args=["subscribers", "erase", EMAIL, "--yes"])
    assert erased.exit_code == 0, erased.output
    assert "erased 1 waiting sign-up" in erased.output
    assert waiting(db, EMAIL) == 0
    take_in(app)
    db.rollback()
    assert db.scalar(select(Subscriber).where(Subscriber.email == EMAIL)) is None


def test_the_intake_stops_growing_while_the_worker_is_away(app, client, db, caplog):
    for i in range(3):
        assert post_signup(client, f"r{i}@example.com").status_code == 303
    app.extensions["funnel_intake_cap"].every = 0  # read the count now, not in 5 s
    with caplog.at_level(logging.ERROR, logger="funnel.subscribers.intake_limits"):
        resp = post_signup(client, "late@example.com")
    assert resp.status_code == 503
    assert "nothing was stored" in resp.get_data(as_text=True)
    assert waiting(db) == 3
    assert any("is the worker running" in r.getMessage() for r in caplog.records)
    take_in(app)  # the worker is back: the form takes sign-ups again
    assert post_signup(client, "late@example.com").status_code == 303
    assert waiting(db) == 1
