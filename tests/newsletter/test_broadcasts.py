"""Broadcasts from the shell: schedule, send once to the right people, cancel, refuse bad input."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from funnel.models import Broadcast, BroadcastRecipient, Delivery, Subscriber
from tests.newsletter_support import add, run_worker, write_broadcast


@pytest.fixture
def people(db, clock):
    now = clock.now
    return {
        "ann": add(db, "ann@example.com", now=now, first_name="Ann"),
        "bob": add(db, "bob@example.com", now=now),
        "pending": add(db, "pending@example.com", status="pending", now=now),
        "gone": add(db, "gone@example.com", status="unsubscribed", now=now),
        "bounced": add(db, "bounced@example.com", status="bounced", now=now),
        "paused": add(db, "paused@example.com", now=now, paused_until=now + timedelta(days=7)),
        "no-news": add(db, "nonews@example.com", now=now, wants_newsletter=False),
    }


def copies(outbox, slug: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for p, m in zip(outbox.paths(), outbox.messages(), strict=True):
        if f"-{slug}-" in p.name:
            out[m["To"]] = out.get(m["To"], 0) + 1
    return out


def test_first_issue_reaches_each_reader_once_and_nobody_else(runner, outbox, people, db):
    result = runner.invoke(args=["broadcast", "send", "first-issue"])
    assert result.exit_code == 0, result.output
    assert "scheduled 'first-issue' for 2 subscribers" in result.output
    run_worker(runner)
    run_worker(runner)  # a second pass sends nothing more
    assert copies(outbox, "first-issue") == {"ann@example.com": 1, "bob@example.com": 1}
    [msg] = outbox.to("ann@example.com")
    assert msg["Subject"] == "Run Stronger news #1: why the hip stretch turns away"
    assert "Hi Ann," in outbox.text(msg)
    assert "chose to get the newsletter" in outbox.text(msg)
    assert msg["List-Unsubscribe"]  # one click stops all mail, as in the plan's emails
    db.rollback()
    [d] = db.scalars(select(Delivery).where(Delivery.step_slug == "first-issue",
                                            Delivery.subscriber_id == people["ann"].id)).all()
    assert (d.kind, d.state) == ("broadcast", "sent")
    assert db.scalar(select(Broadcast.status)) == "sent"
    listing = runner.invoke(args=["broadcast", "list"]).output
    assert re.search(r"first-issue\s+sent\s+2\s+2\s+0", listing), listing


def test_sending_a_slug_twice_does_not_send_twice(runner, outbox, people):
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    run_worker(runner)
    again = runner.invoke(args=["broadcast", "send", "first-issue"])
    assert again.exit_code == 1
    assert "'first-issue' is already sent" in again.output and "a slug is sent once" in again.output
    run_worker(runner)
    assert copies(outbox, "first-issue") == {"ann@example.com": 1, "bob@example.com": 1}


def test_audience_says_who_and_why_not(runner, people):
    result = runner.invoke(args=["broadcast", "audience", "first-issue"])
    assert result.exit_code == 0, result.output
    lines = {label.strip(): int(n) for n, label in
                 re.findall(r"^\s*(\d+)\s+(.+)$", result.output, re.MULTILINE)}
    assert lines == {"would get it": 2, "outside the filter": 0,
                     "turned the newsletter off (wrong topic)": 1, "paused": 1,
                     "not confirmed yet": 1, "unsubscribed": 1, "bounced or marked as spam": 1}


def test_filter_by_source_on_the_command_line(runner, outbox, db, clock, people):
    add(db, "insta@example.com", now=clock.now, utm_source="Instagram")
    result = runner.invoke(args=["broadcast", "send", "first-issue", "--where", "source=instagram"])
    assert result.exit_code == 0, result.output
    assert "for 1 subscribers (source instagram)" in result.output
    run_worker(runner)
    assert copies(outbox, "first-issue") == {"insta@example.com": 1}
    bad = runner.invoke(args=["broadcast", "audience", "first-issue", "--where", "colour=red"])
    assert bad.exit_code == 1 and "unknown audience filter 'colour'" in bad.output


def test_finished_the_plan_filter(runner, outbox, db, clock, people):
    db.add(Delivery(subscriber_id=people["ann"].id, kind="drip", step_slug="staying-strong",
                    state="sent", created_at=clock.now, sent_at=clock.now, attempts=1))
    db.commit()
    write_broadcast(__import__("pathlib").Path(runner.app.config["EMAILS_DIR"]), "graduates",
                    audience="{plan: finished}")
    result = runner.invoke(args=["broadcast", "send", "graduates"])
    assert "for 1 subscribers (plan finished)" in result.output, result.output
    run_worker(runner)
    assert copies(outbox, "graduates") == {"ann@example.com": 1}


def test_at_in_the_past_is_refused_and_changes_nothing(runner, db, people):
    result = runner.invoke(args=["broadcast", "send", "first-issue", "--at", "2026-11-01T09:00"])
    assert result.exit_code == 1
    assert "is in the past" in result.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_at_in_the_future_waits_for_its_time(runner, outbox, people, clock):
    result = runner.invoke(args=["broadcast", "send", "first-issue", "--at", "2026-12-02T08:00Z"])
    assert result.exit_code == 0, result.output
    run_worker(runner)
    assert copies(outbox, "first-issue") == {}
    clock.now = clock.now.replace(day=2, hour=8)
    run_worker(runner)
    assert copies(outbox, "first-issue") == {"ann@example.com": 1, "bob@example.com": 1}


def test_local_nine_in_each_readers_zone(runner, outbox, db, clock):
    add(db, "tokyo@example.com", now=clock.now, tz="Asia/Tokyo")
    add(db, "ny@example.com", now=clock.now, tz="America/New_York")
    assert runner.invoke(args=["broadcast", "send", "first-issue", "--local", "09:00"]).exit_code == 0
    db.rollback()
    due = {db.get(Subscriber, r.subscriber_id).email: r.due_at
           for r in db.scalars(select(BroadcastRecipient))}
    for email, zone in (("tokyo@example.com", "Asia/Tokyo"), ("ny@example.com", "America/New_York")):
        local = due[email].astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (9, 0)
        assert clock.now <= due[email] <= clock.now + timedelta(days=1)
    # 09:00 UTC on 1 December: New York's 09:00 comes first (14:00 UTC), Tokyo's the next day.
    clock.now = due["ny@example.com"]
    run_worker(runner)
    assert copies(outbox, "first-issue") == {"ny@example.com": 1}
    clock.now = due["tokyo@example.com"]
    run_worker(runner)
    assert copies(outbox, "first-issue") == {"ny@example.com": 1, "tokyo@example.com": 1}


def test_bad_local_time_is_refused(runner, db, people):
    result = runner.invoke(args=["broadcast", "send", "first-issue", "--local", "9am"])
    assert result.exit_code == 1 and "HH:MM" in result.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None


def test_typo_d_variable_cannot_be_scheduled(runner, db, people, emails_dir):
    path = write_broadcast(emails_dir, "typo", body="Hi {{ frist_name }},\n\nNews.\n")
    result = runner.invoke(args=["broadcast", "send", "typo"])
    assert result.exit_code == 1
    assert f"{path}:6: error: unknown variable 'frist_name' (did you mean 'first_name'?)" \
        in result.output
    assert "not scheduled" in result.output
    db.rollback()
    assert db.scalar(select(Broadcast.id)) is None
    check = runner.invoke(args=["emails", "check"])
    assert check.exit_code == 1 and "typo.md:6: error: unknown variable 'frist_name'" in check.output


def test_unknown_slug_lists_the_known_ones(runner):
    result = runner.invoke(args=["broadcast", "send", "nope"])
    assert result.exit_code == 1 and "no broadcast 'nope'" in result.output
    assert "first-issue" in result.output


def test_cancel_after_half_stops_the_rest_and_says_how_many_went(app, runner, outbox, db, clock):
    for i in range(6):
        add(db, f"r{i}@example.com", now=clock.now)
    app.extensions["funnel"].settings = __import__("dataclasses").replace(
        app.extensions["funnel"].settings, batch_size=3)
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    # Half the list is due now, the other half later (as with --local).
    db.rollback()
    later = db.scalars(select(BroadcastRecipient).order_by(BroadcastRecipient.id)).all()[3:]
    for r in later:
        r.due_at = clock.now + timedelta(hours=5)
    db.commit()
    run_worker(runner)
    assert len(copies(outbox, "first-issue")) == 3
    result = runner.invoke(args=["broadcast", "cancel", "first-issue"])
    assert result.exit_code == 0, result.output
    assert "cancelled 'first-issue': 3 went out, 3 will not get it." in result.output
    clock.advance(hours=6)
    run_worker(runner)
    assert len(copies(outbox, "first-issue")) == 3
    listing = runner.invoke(args=["broadcast", "list"]).output
    assert re.search(r"first-issue\s+cancelled\s+6\s+3\s+0", listing), listing
    # Sending it again resumes for the rest, never twice for the first half.
    again = runner.invoke(args=["broadcast", "send", "first-issue"])
    assert "for 3 subscribers" in again.output and "3 already had it" in again.output
    run_worker(runner)
    assert set(copies(outbox, "first-issue").values()) == {1}
    assert len(copies(outbox, "first-issue")) == 6


def test_edit_after_scheduling_sends_the_frozen_copy(runner, outbox, people, emails_dir):
    path = emails_dir / "broadcasts" / "first-issue.md"
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    path.write_text(path.read_text().replace("Welcome to the first Run Stronger newsletter.",
                                             "EDITED AFTER SCHEDULING."))
    listing = runner.invoke(args=["broadcast", "list"]).output
    assert "file edited since scheduling: the scheduled copy is what goes out" in listing
    run_worker(runner)
    for msg in outbox.messages():
        assert "Welcome to the first Run Stronger newsletter." in outbox.text(msg)
        assert "EDITED" not in outbox.text(msg)


def test_unsubscribe_or_pause_after_scheduling_wins(runner, outbox, people, db, clock):
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    db.rollback()
    ann, bob = db.get(Subscriber, people["ann"].id), db.get(Subscriber, people["bob"].id)
    ann.status, ann.unsubscribed_at = "unsubscribed", clock.now
    bob.paused_until = clock.now + timedelta(days=3)
    db.commit()
    run_worker(runner)
    assert copies(outbox, "first-issue") == {}
    clock.advance(days=4)  # the pause is over, but the pause meant "no email"
    run_worker(runner)
    assert copies(outbox, "first-issue") == {}
    listing = runner.invoke(args=["broadcast", "list"]).output
    assert re.search(r"first-issue\s+sent\s+2\s+0\s+0", listing), listing


def test_test_send_goes_to_one_address_with_sample_data(runner, outbox, people):
    result = runner.invoke(args=["broadcast", "test", "first-issue", "--to", "coach@example.org"])
    assert result.exit_code == 0, result.output
    [msg] = outbox.messages()
    assert msg["To"] == "coach@example.org"
    assert msg["Subject"].startswith("[TEST] Run Stronger news #1")
    assert "Hi Alex," in outbox.text(msg)
    bad = runner.invoke(args=["broadcast", "test", "first-issue", "--to", "not-an-address"])
    assert bad.exit_code == 1 and len(outbox) == 1


def test_the_plan_topic_narrows_the_audience_and_the_newsletter_topic_is_never_overridden(
        runner, outbox, db, clock, people):
    add(db, "plan-off@example.com", now=clock.now, wants_plan=False)

    def audience(*where: str) -> dict[str, int]:
        args = ["broadcast", "audience", "first-issue"] + [a for w in where
                                                            for a in ("--where", w)]
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
        return {label.strip(): int(n) for n, label in
                re.findall(r"^\s*(\d+)\s+(.+)$", result.output, re.MULTILINE)}

    no_plan = audience("wants_plan=no")
    assert no_plan["would get it"] == 1 and no_plan["outside the filter"] == 2
    # The reader who turned the newsletter off (the plan still on) matches wants_plan=yes
    # but is never in the audience: the breakdown says why.
    with_plan = audience("wants_plan=yes")
    assert with_plan["would get it"] == 2 and with_plan["outside the filter"] == 1
    assert with_plan["turned the newsletter off (wrong topic)"] == 1
    assert "audience: also receives the plan" in runner.invoke(
        args=["broadcast", "audience", "first-issue", "--where", "wants_plan=yes"]).output
    for bad in ("wants_plan=maybe", "wants_plan="):
        refused = runner.invoke(args=["broadcast", "send", "first-issue", "--where", bad])
        assert refused.exit_code == 1
        assert ("wants_plan must be yes (also receives the plan) or no (turned the plan off)"
                in refused.output or "needs a value" in refused.output), refused.output
    db.rollback()
    assert db.scalars(select(Broadcast)).all() == []  # refused: nothing scheduled
    # In the file's front matter (YAML reads a bare no as false: the same filter).
    emails = __import__("pathlib").Path(runner.app.config["EMAILS_DIR"])
    write_broadcast(emails, "no-plan-news", audience="{wants_plan: no}")
    result = runner.invoke(args=["broadcast", "send", "no-plan-news"])
    assert "for 1 subscribers (turned the plan off)" in result.output, result.output
    run_worker(runner)
    assert copies(outbox, "no-plan-news") == {"plan-off@example.com": 1}
    write_broadcast(emails, "odd", audience="{wants_plan: sometimes}")
    check = runner.invoke(args=["emails", "check"])
    assert check.exit_code == 1 and "wants_plan must be yes" in check.output
