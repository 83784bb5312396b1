"""Several sequences (issue 25): files, starts and stops, one email a day, removal."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from funnel import tagging
from funnel.core.sequence import EmailFileError
from funnel.core.sequences import load_sequences
from funnel.core.states import TagSource
from funnel.models import Delivery, SequenceEnrollment
from tests.sequences_support import RACE_STEPS, drip_sends, make_sequences_dir, write_sequence


@pytest.fixture
def emails_dir(tmp_path):
    return make_sequences_dir(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def hours(run_worker, clock, n: int) -> None:
    for _ in range(n):
        clock.advance(hours=1)
        run_worker()


def enrollment(db, sub_id: int, name: str) -> SequenceEnrollment | None:
    db.rollback()
    return db.get(SequenceEnrollment, (sub_id, name))


# -- the files ------------------------------------------------------------------------

def test_the_shipped_plan_is_a_sequence_that_starts_on_confirming():
    from funnel.config import PROJECT_ROOT

    seqs = load_sequences(PROJECT_ROOT / "emails")
    assert not seqs.broken, seqs.broken
    plan = seqs.get("plan")
    assert plan is not None and plan.start.kind == "confirmed" and len(plan.steps) == 8
    assert seqs.of_slug(plan.steps.steps[0].slug) == "plan"


@pytest.mark.parametrize("config, message", [
    ("title: X\nstart: sometimes\n", "start must be"),
    ("title: X\nstart:\n  tag: Race Week\n", "start:"),
    ("title: X\nstart:\n  weather: rain\n", "unknown start"),
    ("title: X\ntopic: gossip\nstart: confirmed\n", "topic must be"),
    ("title: X\nstart: confirmed\ncolour: red\n", "unknown key"),
    ("title: X\nstart: confirmed\nstop:\n  - sky: falls\n", "stop"),
    ("- just\n- a list\n", "key: value"),
])
def test_a_bad_sequence_file_is_broken_with_a_message_and_the_others_still_load(
        emails_dir, config, message):
    (emails_dir / "sequences" / "race-week" / "_sequence.yml").write_text(config)
    seqs = load_sequences(emails_dir)
    assert seqs.get("plan") is not None
    assert message in seqs.broken["race-week"]


def test_a_sequence_needs_its_config_and_slugs_are_unique_across_sequences(emails_dir):
    (emails_dir / "sequences" / "race-week" / "_sequence.yml").unlink()
    assert "_sequence.yml" in load_sequences(emails_dir).broken["race-week"]
    write_sequence(emails_dir, "again", "title: Again\nstart:\n  tag: x\n",
                   {"01-w.md": ("welcome", "0", None)})
    with pytest.raises(EmailFileError, match="used in sequences"):
        load_sequences(emails_dir)


# -- two sequences at once -----------------------------------------------------------

def test_a_tag_starts_a_second_sequence_one_email_a_day_each_step_once(
        app, db, clock, make_subscriber, run_worker, outbox):
    sub = make_subscriber("ann@example.com")  # confirmed at 09:00 UTC, due now
    run_worker()
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    hours(run_worker, clock, 24 * 10)
    sends = drip_sends(outbox, "ann@example.com")
    slugs = [s for s, _ in sends]
    assert sorted(slugs) == sorted(["welcome", "mobility", "strength", "race-one", "race-two",
                                    "race-three"])
    days = [when.date() for _s, when in sends]
    assert len(days) == len(set(days)), f"two sequence emails on one day: {sends}"
    for slug, when in sends:
        if slug != "welcome":  # window: any
            assert 8 <= when.hour < 20, (slug, when)
    # The race week waited for the next morning: the plan's welcome went out that day.
    assert dict(sends)["race-one"] == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    db.rollback()
    rows = db.scalars(select(Delivery.step_slug).where(Delivery.subscriber_id == sub.id)).all()
    assert len(rows) == len(set(rows)) == 6
    assert enrollment(db, sub.id, "race-week").state == "finished"
    assert enrollment(db, sub.id, "plan").state == "finished"


def test_a_stop_tag_ends_the_sequence(app, db, clock, make_subscriber, run_worker, outbox):
    sub = make_subscriber("bob@example.com")
    run_worker()
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    hours(run_worker, clock, 24)  # race-one on the next morning
    assert "race-one" in [s for s, _ in drip_sends(outbox, "bob@example.com")]
    tagging.add_tag(db, sub.id, "no-race", now=clock.now, source=TagSource.CLI)
    db.commit()
    hours(run_worker, clock, 24 * 6)
    slugs = [s for s, _ in drip_sends(outbox, "bob@example.com")]
    assert "race-two" not in slugs and "race-three" not in slugs
    assert "strength" in slugs  # the plan carries on
    e = enrollment(db, sub.id, "race-week")
    assert e.state == "stopped" and "no-race" in e.reason


def test_a_removed_sequence_stops_its_people_and_nothing_is_resent(
        app, db, clock, make_subscriber, run_worker, outbox, emails_dir):
    sub = make_subscriber("cat@example.com")
    run_worker()
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    hours(run_worker, clock, 24)
    assert [s for s, _ in drip_sends(outbox, "cat@example.com")] == ["welcome", "race-one"]
    kept = emails_dir.parent / "race-week-kept"
    shutil.move(emails_dir / "sequences" / "race-week", kept)
    hours(run_worker, clock, 24 * 2)
    e = enrollment(db, sub.id, "race-week")
    assert e.state == "stopped" and "removed" in e.reason
    shutil.move(kept, emails_dir / "sequences" / "race-week")  # put back: still stopped
    hours(run_worker, clock, 24 * 6)
    slugs = [s for s, _ in drip_sends(outbox, "cat@example.com")]
    assert slugs.count("race-one") == 1 and "race-two" not in slugs
    assert "mobility" in slugs and "strength" in slugs


def test_a_sequence_that_starts_when_another_finishes(
        app, db, clock, make_subscriber, run_worker, outbox, emails_dir):
    write_sequence(emails_dir, "after-plan", "title: After\nstart:\n  finished: plan\n",
                   {"01-after.md": ("after-one", "0", None)})
    make_subscriber("dee@example.com")
    hours(run_worker, clock, 24 * 9)
    sends = drip_sends(outbox, "dee@example.com")
    assert [s for s, _ in sends] == ["welcome", "mobility", "strength", "after-one"]
    assert sends[-1][1].date() > sends[-2][1].date()


def test_a_tag_added_before_a_sequence_existed_does_not_start_it(
        app, db, clock, make_subscriber, run_worker, outbox, emails_dir):
    kept = emails_dir.parent / "race-week-kept"
    shutil.move(emails_dir / "sequences" / "race-week", kept)
    sub = make_subscriber("eve@example.com")
    tagging.add_tag(db, sub.id, "race", now=clock.now, source=TagSource.CLI)
    db.commit()
    run_worker()
    clock.advance(days=1)
    shutil.move(kept, emails_dir / "sequences" / "race-week")
    hours(run_worker, clock, 24 * 3)
    assert "race-one" not in [s for s, _ in drip_sends(outbox, "eve@example.com")]
    assert enrollment(db, sub.id, "race-week") is None
    assert RACE_STEPS  # the folder is back and loads
