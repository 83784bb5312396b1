"""A newsletter issue's progress is kept by triggers (migration 0025) and always equals
a recount of its readers and emails; the worker folds the kept rows during a long send."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from funnel.models import (
    Broadcast,
    BroadcastTally,
    Delivery,
    StatusTally,
    StepTally,
    Subscriber,
)
from funnel.newsletter import kept_progress, scheduling
from funnel.reporting import tallies
from funnel.subscribers import privacy
from tests import recount
from tests.newsletter_support import add, run_worker

VERSIONS = Path(__file__).resolve().parents[2] / "funnel" / "migrations" / "versions"


def frozen_migration():
    spec = importlib.util.spec_from_file_location(
        "frozen_0025", VERSIONS / "0025_broadcast_progress_kept.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _words(statements: list[str]) -> list[str]:
    return [" ".join(s.split()) for s in statements]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_generated_triggers_are_the_ones_the_migration_froze(dialect):
    m = frozen_migration()
    frozen = m.PG_DDL if dialect == "postgresql" else m.LITE_DDL
    assert _words(kept_progress.ddl(dialect)) == _words(frozen)
    assert m.BACKFILL == kept_progress.backfill()
    assert (m.PG_DROP if dialect == "postgresql" else m.LITE_DROP) == kept_progress.drop_ddl(dialect)


def agrees(db, slug: str) -> scheduling.Progress:
    db.rollback()
    row = db.scalar(select(Broadcast).where(Broadcast.slug == slug))
    kept = scheduling.progress(db, row)
    assert kept == recount.broadcast_progress(db, row)
    return kept


@pytest.fixture
def readers(db, clock):
    return [add(db, f"r{i}@example.com", now=clock.now, first_name=f"R{i}") for i in range(6)]


def test_kept_progress_equals_a_recount_through_an_issues_life(runner, db, clock, readers, outbox,
                                                                logged_in):
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    assert agrees(db, "first-issue") == scheduling.Progress(
        audience=6, waiting=6, sent=0, failed=0, skipped=0, cancelled=0)
    # Before their turn one reader pauses and one unsubscribes.
    db.execute(update(Subscriber).where(Subscriber.id == readers[0].id)
               .values(paused_until=clock.now + timedelta(days=3)))
    db.execute(update(Subscriber).where(Subscriber.id == readers[1].id)
               .values(status="unsubscribed"))
    db.commit()
    run_worker(runner)
    assert agrees(db, "first-issue") == scheduling.Progress(
        audience=6, waiting=0, sent=4, failed=0, skipped=2, cancelled=0)
    # Whatever changes a delivery is counted: a bounce marks one failed, a reconcile
    # another unknown, and the folding keeps the sums.
    sent = db.scalars(select(Delivery.id).where(Delivery.step_slug == "first-issue")
                      .order_by(Delivery.id)).all()
    db.execute(update(Delivery).where(Delivery.id == sent[0]).values(state="failed"))
    db.execute(update(Delivery).where(Delivery.id == sent[1]).values(state="unknown"))
    db.commit()
    assert agrees(db, "first-issue").failed == 2
    tallies.compact(db)
    db.commit()
    assert agrees(db, "first-issue") == scheduling.Progress(
        audience=6, waiting=0, sent=2, failed=2, skipped=2, cancelled=0)
    # Erasing a reader takes their row and their email with them (the cascades).
    gone = db.get(Subscriber, readers[5].id)
    privacy.erase(db, gone, clock.now)
    assert agrees(db, "first-issue").audience == 5
    # The issue's page shows the kept figures.
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert re.search(r'id="fig-sent-progress">1<', page), page


def test_a_cancel_and_a_resend_are_counted_too(runner, db, clock, readers, emails_dir):
    from tests.newsletter_support import write_broadcast

    write_broadcast(emails_dir, "later-issue")
    at = (clock.now + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    assert runner.invoke(args=["broadcast", "send", "later-issue", "--at", at]).exit_code == 0
    assert agrees(db, "later-issue").waiting == 6
    assert runner.invoke(args=["broadcast", "cancel", "later-issue"]).exit_code == 0
    assert agrees(db, "later-issue") == scheduling.Progress(
        audience=6, waiting=0, sent=0, failed=0, skipped=0, cancelled=6)
    db.execute(update(Subscriber).where(Subscriber.id == readers[2].id)
               .values(status="unsubscribed"))
    db.commit()
    result = runner.invoke(args=["broadcast", "send", "later-issue"])
    assert result.exit_code == 0, result.output
    assert agrees(db, "later-issue") == scheduling.Progress(
        audience=5, waiting=5, sent=0, failed=0, skipped=0, cancelled=0)
    run_worker(runner)
    assert agrees(db, "later-issue").sent == 5


def test_a_long_send_folds_the_kept_rows_between_batches(app, db, clock, readers, monkeypatch):
    """An issue to a million readers is one worker pass: the dashboard's and the issue's
    figures must not sum a delta row per email written since the pass began."""
    from funnel import runtime
    from funnel.runtime import make_worker

    assert app.test_cli_runner().invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    monkeypatch.setattr(runtime, "FOLD_IN_PASS_SECONDS", 0)
    rt = app.extensions["funnel"]
    monkeypatch.setattr(rt, "settings", dataclasses.replace(rt.settings, batch_size=2))
    make_worker(rt).run_pass(clock.now + timedelta(seconds=1))
    db.rollback()
    assert agrees(db, "first-issue").sent == 6
    keys = db.execute(select(func.count()).select_from(
        select(BroadcastTally.slug, BroadcastTally.part, BroadcastTally.value).distinct()
        .subquery())).scalar_one()
    assert db.scalar(select(func.count()).select_from(BroadcastTally)) == keys
    step_keys = db.execute(select(func.count()).select_from(
        select(StepTally.day, StepTally.kind, StepTally.step_slug).distinct()
        .subquery())).scalar_one()
    assert db.scalar(select(func.count()).select_from(StepTally)) == step_keys


def test_the_worker_pass_folds_and_keeps_the_fold(app, db, clock):
    """Folding is written for good (it once ran in a transaction nobody committed)."""
    from funnel.runtime import make_worker

    def vacuums() -> int:  # PostgreSQL: the fold clears away the rows it deleted
        if db.get_bind().dialect.name != "postgresql":
            return 0
        db.rollback()
        return db.scalar(text("SELECT vacuum_count FROM pg_stat_user_tables "
                              "WHERE relname = 'status_tally'")) or 0

    for i in range(4):
        add(db, f"s{i}@example.com", now=clock.now)
    vacuumed = vacuums()
    db.rollback()
    before = dict(db.execute(select(StatusTally.status, func.sum(StatusTally.n))
                             .group_by(StatusTally.status)).all())
    assert db.scalar(select(func.count()).select_from(StatusTally)) >= 4
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    db.rollback()
    assert db.scalar(select(func.count()).select_from(StatusTally)) == len(before)
    assert dict(db.execute(select(StatusTally.status, func.sum(StatusTally.n))
                           .group_by(StatusTally.status)).all()) == before
    if db.get_bind().dialect.name == "postgresql":
        assert vacuums() > vacuumed


def test_the_page_of_an_issue_on_its_way_reads_neither_the_list_nor_its_readers(
        app, runner, db, clock, readers, logged_in):
    """Who would get it is for the form that schedules it: while the issue goes out its
    page (refreshed every 15 seconds) reads kept rows only, however long the list."""
    from sqlalchemy import event

    at = (clock.now + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    assert runner.invoke(args=["broadcast", "send", "first-issue", "--at", at]).exit_code == 0
    statements: list[str] = []
    engine = app.extensions["funnel"].engine
    listen = lambda *a: statements.append(a[2])  # noqa: E731  (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert 'id="fig-sent-progress">0<' in page and "0 of 6 done" in page
    assert "Still to go" in page and "would get it" not in page
    read = " ".join(statements)
    assert not re.search(r"FROM (subscriber|broadcast_recipient|delivery)\b", read), read
    # Cancelled, it may be scheduled again: the form counts who would get it now.
    assert runner.invoke(args=["broadcast", "cancel", "first-issue"]).exit_code == 0
    page = logged_in.get("/admin/broadcasts/first-issue").get_data(as_text=True)
    assert re.search(r'id="would-get">6<', page), page
