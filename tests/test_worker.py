"""The drip engine: what is due goes out once, in order, in the window, never after
an unsubscribe; failures retry or are recorded; a dead worker's work is picked up."""

from __future__ import annotations

import gc
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from funnel.drip.store import Store
from funnel.mail.compose import Composer
from funnel.models import Subscriber
from funnel.runtime import make_worker
from funnel.subscribers import actions as subscribers
from funnel.transports import AuthError, TransientSendError
from tests.conftest import sign_up_and_confirm
from tests.drip import make_emails_dir, write_step
from tests.faults import Crash, InterruptingComposer, ScriptedTransport


@pytest.fixture
def emails_dir(tmp_path) -> Path:
    """A copy of the real layout with a small sequence the tests control."""
    return make_emails_dir(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


FakeTransport = ScriptedTransport  # records what it is given, plays a script (tests/faults.py)


def deliveries(db, email):
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
    return sorted((d for d in sub.deliveries if d.kind == "drip"), key=lambda d: d.id)


def drip_subjects(outbox, email):
    return [m["Subject"] for m in outbox.to(email) if m["Subject"].startswith("Step ")]


def worker_with(app, transport=None, composer=None):
    return make_worker(app.extensions["funnel"], transport=transport, composer=composer)


def run(app, clock, transport=None):
    return worker_with(app, transport).run_pass(clock.now)


def test_step_one_goes_out_as_soon_as_confirmed(app, client, outbox, clock):
    sign_up_and_confirm(client, outbox, "first@example.com", "Kim")
    report = run(app, clock)
    assert report.sent == 1
    [msg] = [m for m in outbox.to("first@example.com") if m["Subject"] == "Step welcome"]
    assert "Hi Kim, this is welcome." in outbox.text(msg)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://localhost/unsubscribe/")
    assert msg["Message-ID"] and msg["Date"] and msg["List-Id"]
    # A second pass at the same moment sends nothing more.
    assert run(app, clock).sent == 0


def test_following_weeks_each_step_once_in_order_inside_window(app, client, outbox, clock, db):
    sign_up_and_confirm(client, outbox, "w@example.com", tz="America/New_York")
    for _ in range(24 * 14 // 2):  # a worker pass every two hours for two weeks
        run(app, clock)
        clock.advance(hours=2)
    assert drip_subjects(outbox, "w@example.com") == ["Step welcome", "Step mobility", "Step strength"]
    sent = deliveries(db, "w@example.com")
    assert [d.state for d in sent] == ["sent"] * 3
    ny = ZoneInfo("America/New_York")
    for d in sent[1:]:
        assert 8 <= d.sent_at.astimezone(ny).hour < 20
    assert sent[1].sent_at - sent[0].sent_at >= timedelta(days=2)
    assert sent[2].sent_at - sent[1].sent_at >= timedelta(days=3)


def test_nothing_after_unsubscribe(app, client, outbox, clock):
    sign_up_and_confirm(client, outbox, "stay@example.com")
    sign_up_and_confirm(client, outbox, "leave@example.com")
    run(app, clock)
    unsubscribe = outbox.link(outbox.to("leave@example.com")[-1], "unsubscribe")
    assert client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    for _ in range(15):
        clock.advance(days=1)
        run(app, clock)
    assert len(drip_subjects(outbox, "stay@example.com")) == 3
    assert drip_subjects(outbox, "leave@example.com") == ["Step welcome"]


def test_unsubscribe_after_claim_wins(app, client, outbox, clock, db):
    sign_up_and_confirm(client, outbox, "late@example.com")
    rt = app.extensions["funnel"]

    def unsubscribe():  # the person unsubscribes while the batch is in hand
        with rt.sessions() as s:
            sub = s.scalar(select(Subscriber).where(Subscriber.email == "late@example.com"))
            subscribers.unsubscribe(s, sub, now=clock.now, reason="test")

    composer = InterruptingComposer(Composer(rt.settings, rt.clock), unsubscribe)
    report = worker_with(app, composer=composer).run_pass(clock.now)
    assert report.claimed == 1 and report.sent == 0 and report.skipped == 1
    assert drip_subjects(outbox, "late@example.com") == []
    assert deliveries(db, "late@example.com") == []  # the intent was withdrawn


def test_pending_subscribers_get_no_drip(app, client, outbox, clock):
    from tests.conftest import sign_up

    sign_up(client, "pending@example.com")
    for _ in range(5):
        clock.advance(days=1)
        run(app, clock)
    assert drip_subjects(outbox, "pending@example.com") == []


def test_dead_worker_claim_is_picked_up_after_lease(app, client, outbox, clock, db):
    sign_up_and_confirm(client, outbox, "crash@example.com")
    rt = app.extensions["funnel"]
    assert Store(rt.sessions, owner="dead-worker").claim_due(clock.now, clock.now)
    # The worker died here, after claiming. Another worker must leave it alone…
    assert run(app, clock).sent == 0
    # …until the lease runs out.
    clock.advance(seconds=rt.settings.lease_seconds + 1)
    assert run(app, clock).sent == 1
    assert drip_subjects(outbox, "crash@example.com") == ["Step welcome"]


def crash_after_intent(app, clock, transport=None) -> None:
    """A worker claims, commits its delivery intents, and dies while sending."""
    crashing = ScriptedTransport(idempotent=transport is None)
    crashing.script = [Crash()]
    with pytest.raises(Crash):
        worker_with(app, crashing).run_pass(clock.now)
    assert crashing.sent == []


def test_crash_after_intent_with_idempotent_outbox_resends_same_file(app, client, outbox, clock, db):
    sign_up_and_confirm(client, outbox, "mid@example.com")
    rt = app.extensions["funnel"]
    crash_after_intent(app, clock)
    clock.advance(seconds=rt.settings.lease_seconds + 1)
    assert run(app, clock).sent == 1
    [d] = deliveries(db, "mid@example.com")
    assert d.state == "sent" and d.attempts == 2
    assert drip_subjects(outbox, "mid@example.com") == ["Step welcome"]


def test_crash_after_intent_with_provider_is_never_sent_twice(app, client, outbox, clock, db):
    fake = FakeTransport()
    sign_up_and_confirm(client, outbox, "unknown@example.com")
    crash_after_intent(app, clock, fake)
    clock.advance(seconds=600)
    run(app, clock, fake)
    [d] = deliveries(db, "unknown@example.com")
    assert d.state == "unknown" and "cannot arrive twice" in d.error
    assert fake.sent == []
    # The plan carries on with the next step.
    clock.advance(days=3)
    run(app, clock, fake)
    assert [m.subject for m in fake.sent] == ["Step mobility"]


def test_transient_errors_retry_with_backoff_then_send_once(app, client, outbox, clock, db):
    fake = FakeTransport()
    fake.script = [TransientSendError("503 from provider", retry_after=120),
                   TransientSendError("timeout")]
    sign_up_and_confirm(client, outbox, "retry@example.com")
    run(app, clock, fake)
    [d] = deliveries(db, "retry@example.com")
    assert d.state == "retry" and d.error == "503 from provider"
    sub = d.subscriber
    assert sub.next_due_at >= clock.now + timedelta(seconds=120)
    run(app, clock, fake)  # not yet due again
    assert fake.sent == []
    clock.now = sub.next_due_at
    run(app, clock, fake)  # second failure: waits longer
    [d] = deliveries(db, "retry@example.com")
    assert d.state == "retry" and d.attempts == 2
    clock.advance(hours=3)
    run(app, clock, fake)
    [d] = deliveries(db, "retry@example.com")
    assert d.state == "sent" and d.attempts == 3
    assert [m.subject for m in fake.sent] == ["Step welcome"]


def test_permanent_failure_is_recorded_and_not_retried(app, client, outbox, clock, db):
    fake = FakeTransport()
    fake.script = ["reject"]
    sign_up_and_confirm(client, outbox, "bad@example.com")
    run(app, clock, fake)
    clock.advance(hours=1)
    run(app, clock, fake)
    [d] = deliveries(db, "bad@example.com")
    assert d.state == "failed" and d.error == "400 invalid address"
    assert fake.sent == []


def test_bad_credentials_stop_the_worker_and_lose_nothing(app, client, outbox, clock, db):
    fake = FakeTransport()
    fake.script = [AuthError("401 bad key")]
    sign_up_and_confirm(client, outbox, "auth@example.com")
    with pytest.raises(AuthError):
        run(app, clock, fake)
    assert deliveries(db, "auth@example.com") == []  # the intent was withdrawn
    assert run(app, clock, fake).sent == 1  # fixed key: it goes out, once
    assert [m.subject for m in fake.sent] == ["Step welcome"]


def test_the_garbage_collector_is_back_on_after_every_batch(app, client, outbox, clock):
    """A batch pauses the cyclic collector (its objects all live until it ends);
    after it, even one that stopped the worker, memory is looked after as usual."""
    fake = FakeTransport()
    fake.script = [AuthError("401 bad key")]
    sign_up_and_confirm(client, outbox, "collector@example.com")
    assert gc.isenabled()
    with pytest.raises(AuthError):
        run(app, clock, fake)
    assert gc.isenabled()
    assert run(app, clock, fake).sent == 1
    assert gc.isenabled()


def test_sequence_edits_apply_by_slug(app, client, outbox, clock, emails_dir):
    sign_up_and_confirm(client, outbox, "edit@example.com")
    run(app, clock)
    seq_dir = emails_dir / "sequence"
    # The marketer removes "mobility", inserts a step before the subscriber's
    # position and appends one at the end.
    (seq_dir / "02-mobility.md").unlink()
    write_step(seq_dir, "00-intro.md", "intro", "0", None)
    write_step(seq_dir, "09-bonus.md", "bonus", "1 day", None)
    for _ in range(12):
        clock.advance(days=1)
        run(app, clock)
    assert drip_subjects(outbox, "edit@example.com") == ["Step welcome", "Step strength", "Step bonus"]


def test_finished_subscriber_gets_a_newly_appended_step(app, client, outbox, clock, emails_dir):
    sign_up_and_confirm(client, outbox, "done@example.com")
    for _ in range(10):
        run(app, clock)
        clock.advance(days=1)
    assert len(drip_subjects(outbox, "done@example.com")) == 3
    write_step(emails_dir / "sequence", "04-extra.md", "extra", "2 days", None)
    run(app, clock)
    assert drip_subjects(outbox, "done@example.com")[-1] == "Step extra"


def test_cli_worker_once_now_and_visibility(app, client, outbox, runner, clock):
    sign_up_and_confirm(client, outbox, "cli@example.com")
    result = runner.invoke(args=["worker", "--once", "--now", "2026-12-01T09:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    result = runner.invoke(args=["worker", "--once", "--now", "2026-12-04T12:00:00Z"])
    assert "sent 1" in result.output
    seq = runner.invoke(args=["sequence"])
    assert seq.exit_code == 0
    lines = seq.output.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["welcome", "mobility", "strength"]
    assert "+2d" in lines[1] and "Step mobility" in lines[1]
    sched = runner.invoke(args=["schedule", "CLI@example.com", "--now", "2026-12-04T12:00:00Z"])
    assert sched.exit_code == 0, sched.output
    assert "welcome" in sched.output and "sent" in sched.output
    assert "strength" in sched.output and "planned  2026-12-07" in sched.output
    bad = runner.invoke(args=["worker", "--once", "--now", "next tuesday"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output
    missing = runner.invoke(args=["schedule", "nobody@example.com"])
    assert missing.exit_code != 0 and "no subscriber" in missing.output


def test_worker_whose_lease_was_taken_over_does_not_send(app, client, outbox, clock, db):
    slow, other = FakeTransport(), FakeTransport()
    sign_up_and_confirm(client, outbox, "stall@example.com")
    rt = app.extensions["funnel"]

    def stall():  # it wrote its intent and stalls past its lease while rendering…
        clock.advance(seconds=rt.settings.lease_seconds + 1)
        run(app, clock, other)  # …and another worker takes the subscriber over

    stalled = worker_with(app, slow, InterruptingComposer(Composer(rt.settings, rt.clock), stall))
    stalled.run_pass(clock.now)  # it wakes up and carries on
    assert slow.sent == [] and other.sent == []  # never twice, from either
    [d] = deliveries(db, "stall@example.com")
    assert d.state == "unknown"


def test_an_idle_pass_reads_no_whole_table_on_sqlite(app, clock):
    """An idle worker polls every few seconds: on SQLite, a statement that scans the
    subscriber list took ~300 ms per pass at a million subscribers (README, Benchmarks)."""
    rt = app.extensions["funnel"]
    if rt.engine.dialect.name != "sqlite":
        pytest.skip("the plan checked is SQLite's; PostgreSQL's is measured at a million")
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, parameters))

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        run(app, clock)
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    with rt.engine.connect() as conn:
        scans = [s for s, p in statements for row in
                 conn.exec_driver_sql("EXPLAIN QUERY PLAN " + s, p)
                 if row[-1].startswith("SCAN subscriber")]
    assert scans == []
