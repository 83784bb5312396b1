"""A live email that cannot be rendered (a typo'd variable) holds that step for
everyone who reaches it, until the file is fixed: never skipped, never followed
by the next step, then sent exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from funnel.models import Subscriber
from funnel.runtime import make_worker
from tests.conftest import sign_up_and_confirm
from tests.drip import make_emails_dir, write_step


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return make_emails_dir(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def run(app, clock):
    return make_worker(app.extensions["funnel"]).run_pass(clock.now)


def drip(outbox, email):
    return [m for m in outbox.to(email) if m["Subject"].startswith("Step ")]


def rows(db, email):
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
    return {d.step_slug: d for d in sub.deliveries if d.kind == "drip"}


def test_broken_step_is_held_until_fixed_then_sent_once_and_the_plan_goes_on(
        app, client, db, outbox, clock, emails_dir):
    sign_up_and_confirm(client, outbox, "held@example.com", "Kim")
    assert run(app, clock).sent == 1
    step = emails_dir / "sequence" / "02-mobility.md"
    step.write_text(step.read_text().replace("{{ first_name }}", "{{ frist_name }}"))

    clock.advance(days=3)
    report = run(app, clock)
    assert report.held == 1 and report.sent == 0
    held = rows(db, "held@example.com")["mobility"]
    assert held.state == "held" and "frist_name" in held.error
    # Days pass: the next step's time comes and goes; nothing moves past the broken one.
    for _ in range(6):
        clock.advance(days=1)
        assert run(app, clock).sent == 0
    assert [m["Subject"] for m in drip(outbox, "held@example.com")] == ["Step welcome"]
    assert set(rows(db, "held@example.com")) == {"welcome", "mobility"}

    write_step(emails_dir / "sequence", "02-mobility.md", "mobility", "2 days", None)
    clock.advance(minutes=1)
    assert run(app, clock).sent == 1
    clock.advance(minutes=1)
    assert run(app, clock).sent == 0  # exactly once
    mobility = [m for m in drip(outbox, "held@example.com") if m["Subject"] == "Step mobility"]
    assert len(mobility) == 1 and "Hi Kim, this is mobility." in outbox.text(mobility[0])
    assert rows(db, "held@example.com")["mobility"].state == "sent"

    for _ in range(5):
        clock.advance(days=1)
        run(app, clock)
    assert [m["Subject"] for m in drip(outbox, "held@example.com")] == [
        "Step welcome", "Step mobility", "Step strength"]


def test_a_held_step_waits_for_the_window_once_fixed(app, client, db, outbox, clock, emails_dir):
    sign_up_and_confirm(client, outbox, "night@example.com", tz="Asia/Tokyo")
    run(app, clock)
    step = emails_dir / "sequence" / "02-mobility.md"
    step.write_text(step.read_text().replace("{{ site_url }}", "{{ site_ulr }}"))
    clock.advance(days=2, hours=1)  # 3 Dec 10:00 UTC = 19:00 in Tokyo: inside the window
    assert run(app, clock).held == 1
    write_step(emails_dir / "sequence", "02-mobility.md", "mobility", "2 days", None)
    clock.advance(hours=2)  # 21:00 in Tokyo: fixed, but it is night there
    assert run(app, clock).sent == 0
    clock.advance(hours=11)  # 08:00 in Tokyo
    assert run(app, clock).sent == 1
