"""The coach's rules (issue 25): the file, the check, the worker's set-based firing,
scanner clicks, holds, the dry run and the shipped examples."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from funnel.config import PROJECT_ROOT
from funnel.core.automations import RulesFileError, check_rules, parse_rules
from funnel.core.sequences import load_sequences
from funnel.mail.check import run_check
from funnel.models import (
    ConsentRecord,
    Delivery,
    DeliveryEvent,
    RuleFiring,
    SequenceEnrollment,
    Subscriber,
    SubscriberTag,
)
from tests.external import SEED_ARTICLE, require


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    return Path(shutil.copytree(PROJECT_ROOT / "emails", tmp_path / "emails"))


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def click(db, sub: Subscriber, slug: str, url: str, at) -> None:
    d = db.scalar(select(Delivery).where(Delivery.subscriber_id == sub.id,
                                         Delivery.step_slug == slug))
    db.add(DeliveryEvent(delivery_id=d.id, subscriber_id=sub.id, kind="click", step_slug=slug,
                         at=at, detail=url))
    db.commit()


def tags(db, sub) -> set[str]:
    db.rollback()
    return set(db.scalars(select(SubscriberTag.tag).where(SubscriberTag.subscriber_id == sub.id)))


# -- the file and the check ---------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("name: x\n", "a list of rules"),
    ("- name: A\n  when: {rained: yes}\n  then: [{add_tag: x}]\n", "unknown when"),
    ("- name: A\n  when: {tag_added: x}\n  then: [{ad_tag: y}]\n", "did you mean 'add_tag'"),
    ("- name: A\n  when: {inactive_days: soon}\n  then: [{add_tag: y}]\n", "whole number"),
    ("- name: A\n  when: {tag_added: x}\n  then: []\n", "list of actions"),
    ("- name: A\n  when: {tag_added: 'x y'}\n  then: [{add_tag: y}]\n", "tag"),
    ("- name: A\n  when: {tag_added: x}\n  then: [{add_tag: y}]\n- name: A\n"
     "  when: {tag_added: z}\n  then: [{add_tag: y}]\n", "two rules are named"),
])
def test_a_bad_rules_file_is_refused_with_its_line(text, message):
    with pytest.raises(RulesFileError, match=message):
        parse_rules(text)


def test_the_check_refuses_unknown_sequences_and_emails_suggests_tags_and_finds_loops():
    rules = parse_rules(
        "- name: Start\n  when: {clicked: x}\n  then: [{start: race-wek}, {send: nope}]\n"
        "- name: Typo\n  when: {clicked: y}\n  then: [{add_tag: plan-pfd}]\n"
        "- name: Ping\n  when: {tag_added: a}\n  then: [{add_tag: b}]\n"
        "- name: Pong\n  when: {tag_added: b}\n  then: [{add_tag: a}]\n"
        "- name: Self\n  when: {tag_added: c}\n  repeat: true\n  then: [{add_tag: c}]\n")
    found = check_rules(rules, sequences={"plan", "race-week"}, emails={"still-reading"},
                        known_tags={"plan-pdf"})
    text = "\n".join(f"{p.level}: {p.message}" for p in found)
    assert "error: rule 'Start': start: no sequence 'race-wek' (did you mean 'race-week'?)" in text
    assert "error: rule 'Start': send: no email with slug 'nope'" in text
    assert "warning: rule 'Typo': tag 'plan-pfd' is used nowhere else: did you mean 'plan-pdf'?" \
        in text
    assert "loop: Ping -> Pong -> Ping" in text and "loop: Self -> Self" in text


def test_emails_check_runs_the_rules_check(app, emails_dir, runner):
    assert [p for p in run_check(app) if p.level == "error"] == []
    path = emails_dir / "automations.yml"
    path.write_text(path.read_text().replace("send: still-reading", "send: still-readin"))
    out = runner.invoke(args=["emails", "check"])
    assert out.exit_code == 1
    assert "automations.yml" in out.output and "still-readin" in out.output


def test_the_shipped_examples_are_in_our_own_words(emails_dir):
    article = require(SEED_ARTICLE).read_text()

    def runs(text: str) -> set[tuple[str, ...]]:
        import re

        w = re.findall(r"[a-z0-9]+", text.lower())
        return {tuple(w[i:i + 7]) for i in range(len(w) - 6)}

    files = [*(emails_dir / "sequences" / "race-week").glob("*.md"),
             *(emails_dir / "automations").glob("*.md"),
             emails_dir / "sequences" / "plan" / "08-staying-strong.md"]
    assert len(files) == 5
    for path in files:
        copied = runs(path.read_text()) & runs(article)
        assert not copied, f"{path.name} copies the article: {copied}"


# -- the worker: clicks, scanners, holds ------------------------------------------------

def test_a_human_pdf_click_tags_and_a_scanners_clicks_do_not(
        app, db, clock, make_subscriber, run_worker):
    human = make_subscriber("human@example.com")
    scanned = make_subscriber("scanned@example.com")
    burst = make_subscriber("burst@example.com")
    run_worker()  # the plan's first email to all three
    slug = load_sequences(PROJECT_ROOT / "emails").get("plan").steps.steps[0].slug
    sent = clock.now
    pdf = "http://localhost/plan/….pdf"
    click(db, scanned, slug, pdf, sent + timedelta(seconds=3))        # seconds after delivery
    click(db, burst, slug, pdf, sent + timedelta(minutes=5))           # every link at once
    click(db, burst, slug, "http://localhost/plan/…", sent + timedelta(minutes=5, seconds=1))
    click(db, human, slug, pdf, sent + timedelta(minutes=7))
    clock.advance(minutes=10)
    run_worker()
    assert tags(db, human) == {"plan-pdf"}
    assert tags(db, scanned) == set() and tags(db, burst) == set()
    firings = db.scalars(select(RuleFiring.rule).where(RuleFiring.subscriber_id == human.id))
    assert list(firings) == ["Plan PDF readers"]
    click(db, human, slug, pdf, clock.now)  # again: the rule fires once per person
    clock.advance(minutes=10)
    run_worker()
    db.rollback()
    assert db.scalar(select(func.count()).select_from(RuleFiring)) == 1


def test_a_rule_naming_a_missing_sequence_is_held_and_changes_nothing(
        app, db, clock, make_subscriber, run_worker, emails_dir, runner):
    (emails_dir / "automations.yml").write_text(
        "- name: Gone\n  when: {tag_added: race}\n  then: [{add_tag: x}, {start: vanished}]\n")
    sub = make_subscriber("ann@example.com")
    db.add(SubscriberTag(subscriber_id=sub.id, tag="race", added_at=clock.now, source="cli"))
    db.commit()
    run_worker()
    assert tags(db, sub) == {"race"}
    assert db.scalar(select(func.count()).select_from(RuleFiring)) == 0
    out = runner.invoke(args=["automations", "dry-run"])
    assert "Gone: HELD, no sequence 'vanished'" in out.output


def test_dry_run_says_who_without_doing_it(app, db, clock, make_subscriber, runner):
    old = make_subscriber("old@example.com")
    make_subscriber("new@example.com", confirmed_at=clock.now + timedelta(days=100))
    assert old.confirmed_at == clock.now
    later = (clock.now + timedelta(days=121)).isoformat()
    out = runner.invoke(args=["automations", "dry-run", "--now", later])
    assert out.exit_code == 0, out.output
    assert "Still reading: would fire for 1" in out.output and "  old@example.com" in out.output
    assert "new@example.com" not in out.output
    db.rollback()
    assert db.scalar(select(func.count()).select_from(RuleFiring)) == 0
    assert db.scalar(select(func.count()).select_from(SubscriberTag)) == 0
    bad = runner.invoke(args=["automations", "dry-run", "--now", "next tuesday"])
    assert bad.exit_code != 0 and "ISO" in bad.output


def test_a_rule_matching_many_is_a_few_statements(app, db, clock, make_subscriber):
    from funnel.automation.rules import apply_rules
    from funnel.core.automations import load_rules

    for i in range(400):
        make_subscriber(f"r{i}@example.com")
    rt = app.extensions["funnel"]
    seqs = load_sequences(rt.settings.emails_dir)
    rules = tuple(r for r in load_rules(rt.settings.emails_dir) if r.name == "Still reading")
    statements: list[str] = []
    engine = rt.engine

    def count(_conn, _cursor, statement, *_a):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        report = apply_rules(rt.sessions, rules, seqs, clock.now + timedelta(days=121))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert report.fired == {"Still reading": 400}
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) <= 6, writes  # firings, tag, enrolment, cursor, mark
    db.rollback()
    assert db.scalar(select(func.count()).select_from(SequenceEnrollment)
                     .where(SequenceEnrollment.sequence == "send-still-reading")) == 400


# -- the shipped examples end to end, in simulated time ---------------------------------

def test_inactive_readers_are_asked_once_then_unsubscribed_unless_they_click(
        app, db, clock, make_subscriber, run_worker, outbox):
    quiet = make_subscriber("quiet@example.com")
    keen = make_subscriber("keen@example.com")
    for _ in range(120):  # the whole plan goes out; nobody opens or clicks anything
        run_worker()
        clock.advance(days=1)
    for _ in range(48):
        run_worker()
        clock.advance(hours=1)
    asked = [m for m in outbox.to("quiet@example.com") if m["Subject"] == "Still want these emails?"]
    assert len(asked) == 1
    assert len([m for m in outbox.to("keen@example.com")
                if m["Subject"] == "Still want these emails?"]) == 1
    d = db.scalar(select(Delivery).where(Delivery.subscriber_id == keen.id,
                                         Delivery.step_slug == "still-reading"))
    click(db, keen, "still-reading", "http://localhost/?still=reading",
          d.sent_at + timedelta(hours=3))
    for _ in range(15):
        run_worker()
        clock.advance(days=1)
    db.rollback()
    db.expire_all()
    assert db.get(Subscriber, quiet.id).status == "unsubscribed"
    assert db.get(Subscriber, quiet.id).status_reason == "inactive"
    assert db.get(Subscriber, keen.id).status == "confirmed"
    withdrawal = db.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == quiet.id,
                                                       ConsentRecord.action == "withdraw"))
    assert withdrawal is not None and withdrawal.text == "inactive"
    assert len([m for m in outbox.to("quiet@example.com")
                if m["Subject"] == "Still want these emails?"]) == 1


def test_a_race_click_in_the_last_plan_email_starts_race_week(
        app, db, clock, make_subscriber, run_worker, outbox):
    sub = make_subscriber("racer@example.com")
    for _ in range(60):
        run_worker()
        clock.advance(days=1)
    last = db.scalar(select(Delivery).where(Delivery.subscriber_id == sub.id,
                                            Delivery.step_slug == "staying-strong"))
    assert last is not None and last.state == "sent"
    assert "training=race" in outbox.text(
        [m for m in outbox.to("racer@example.com") if "Part 8" in m["Subject"]][0])
    click(db, sub, "staying-strong", "http://localhost/?training=race",
          last.sent_at + timedelta(hours=2))
    for _ in range(24 * 6):
        run_worker()
        clock.advance(hours=1)
    race = [m["Subject"] for m in outbox.to("racer@example.com") if "Race week" in m["Subject"]]
    assert len(race) == 3 and race[0].startswith("Race week, part 1")
    assert tags(db, sub) == {"race"}


def test_a_rules_unsubscribe_tells_the_webhooks_like_any_other(app, db, clock, make_subscriber):
    """The set-based unsubscribe queues subscriber.unsubscribed for each person, with
    their tags, as the ORM path does for every other way out."""
    from funnel.automation import rules as rule_actions
    from funnel.hooks import manage
    from funnel.hooks.secret_box import box_from_config
    from funnel.models import WebhookMessage
    from funnel.tagging import add_tag

    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        manage.add_endpoint(s, "http://127.0.0.1:9/hook", ["subscriber.unsubscribed"],
                            now=clock.now, allow_private=True, box=box_from_config(app.config))
    quiet = make_subscriber("quiet@example.com")
    make_subscriber("stays@example.com")
    with rt.sessions() as s:
        add_tag(s, quiet.id, "race", now=clock.now, source="rule", reason="test")
        s.commit()
        rule_actions.unsubscribe(s, select(Subscriber.id).where(Subscriber.id == quiet.id),
                                 "inactive", clock.now)
        s.commit()
    db.rollback()
    [msg] = db.scalars(select(WebhookMessage)).all()
    body = json.loads(msg.payload)
    assert msg.event_type == "subscriber.unsubscribed" and msg.subscriber_id == quiet.id
    assert body["data"]["email"] == "quiet@example.com"
    assert body["data"]["status"] == "unsubscribed" and body["data"]["tags"] == ["race"]
    db.expire_all()
    assert db.get(Subscriber, quiet.id).status == "unsubscribed"
