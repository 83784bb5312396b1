"""The admin's pages for sequences and rules, and a subscriber's sequences and rule history."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from funnel import tagging
from funnel.core.states import TagSource
from funnel.models import Delivery
from tests.admin_support import ADMIN, PASSWORD
from tests.conftest import csrf_token
from tests.sequences_support import make_sequences_dir


@pytest.fixture
def emails_dir(tmp_path):
    root = make_sequences_dir(tmp_path / "emails")
    (root / "automations.yml").write_text(
        "- name: Tag racers\n  when: {tag_added: race}\n  then: [{add_tag: racer}]\n"
        "- name: Gone\n  when: {tag_added: x}\n  then: [{start: vanished}]\n")
    return root


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def log_in(client):
    token = csrf_token(client, "/admin/login")
    resp = client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD,
                                             "csrf_token": token})
    assert resp.status_code == 302
    return client


def test_sequences_rules_and_the_subscribers_history(
        client, admin, db, clock, make_subscriber, run_worker):
    ann = make_subscriber("ann@example.com")
    make_subscriber("bob@example.com")
    run_worker()
    tagging.add_tag(db, ann.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    for _ in range(30):
        clock.advance(hours=1)
        run_worker()
    logged_in = log_in(client)  # after the clock moved: sessions end after 12 hours
    page = logged_in.get("/admin/sequences").get_data(as_text=True)
    assert "Race week" in page and "tag: race" in page and "Tag racers" in page
    plan = logged_in.get("/admin/sequences/plan").get_data(as_text=True)
    assert '<dd id="active">2</dd>' in plan
    # Both had the welcome; both wait for the next step, nobody dropped off.
    assert "Step welcome" in plan and "<td>2</td><td>0</td><td>0%</td>" in plan
    assert "<td>0</td><td>2</td><td>0%</td>" in plan  # mobility: sent to none, two waiting
    race = logged_in.get("/admin/sequences/race-week").get_data(as_text=True)
    assert '<dd id="active">1</dd>' in race
    rule = logged_in.get("/admin/rules/Tag racers").get_data(as_text=True)
    assert 'Fired 1 time.' in rule and "ann@example.com" in rule
    assert logged_in.get("/admin/rules/Nope").status_code == 404
    assert logged_in.get("/admin/sequences/nope").status_code == 404
    mine = logged_in.get(f"/admin/subscribers/{ann.public_id}").get_data(as_text=True)
    assert "race-week" in mine and "Tag racers" in mine and "<code>racer</code>" in mine
    db.rollback()
    assert db.scalar(select(Delivery.state).where(Delivery.step_slug == "race-one")) == "sent"
