"""Group commit of the sign-up intake (funnel/subscribers/intake_writer.py): the rows
of concurrent requests share one commit, each request answers only after its own
row is committed, and a writer that fails makes the request fail, never answer."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from funnel.models import SignupIntake
from funnel.subscribers import actions as subscribers
from funnel.subscribers import intake, intake_writer
from tests.conftest import post_signup

N = 40


def grouped_engine(app):
    # PostgreSQL's intake engine is grouped by default; SQLite's intake is the app's
    # own engine, grouped here so the same writer is tested on both.
    return intake_writer.group(app.extensions["funnel"].intake())


def row(i: int, clock) -> dict:
    return intake.intake_row(email=f"runner{i}@example.com", first_name=f"R{i}",
                                  timezone="Europe/London", meta=subscribers.SignupMeta(),
                                  now=clock())


def test_concurrent_sign_ups_are_all_committed_and_share_commits(app, db, clock, monkeypatch):
    engine = grouped_engine(app)
    gate = threading.Event()
    first = intake._write_intake_row

    def slow_first(engine_, params):
        gate.wait(10)  # hold the first commit so the others queue behind it
        first(engine_, params)

    monkeypatch.setattr(intake, "_write_intake_row", slow_first)
    answered: list[int] = []
    errors: list[BaseException] = []

    def sign_up(i: int) -> None:
        try:
            intake.record_intake(engine, row(i, clock))
            answered.append(i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(N)]
    threads[0].start()
    deadline = time.monotonic() + 10
    while intake_writer.writer(engine) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    w = intake_writer.writer(engine)
    assert w is not None
    while w.queue.qsize() < N - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not answered, "a request answered before its row was committed"
    gate.set()
    for t in threads:
        t.join(20)
    assert not errors
    assert sorted(answered) == list(range(N))
    emails = set(db.scalars(select(SignupIntake.email)))
    assert emails == {f"runner{i}@example.com" for i in range(N)}
    # The first alone, the 39 that queued behind it in one more transaction.
    assert w.batches == 2


def test_one_bad_row_in_a_batch_fails_only_its_own_request(app, db, clock, monkeypatch):
    engine = grouped_engine(app)
    rows = [row(i, clock) for i in range(5)]
    # Build each row's driver parameters as record_intake does, then break the third.
    sent: list = []
    monkeypatch.setattr(intake_writer, "submit", lambda e, p, many, one: sent.append(p) or True)
    for r in rows:
        intake.record_intake(engine, r)
    params = list(sent)
    monkeypatch.undo()
    bad = params[2][:-1] + (object(),) if isinstance(params[2], tuple) else {**params[2], "at": object()}
    params[2] = bad
    w = intake_writer.IntakeWriter(engine, intake._write_intake_rows,
                                   intake._write_intake_row, key=(0, 0))
    items = [intake_writer._Pending(p) for p in params]
    w._commit(items)
    assert [i.error is None for i in items] == [True, True, False, True, True]
    assert db.scalar(select(func.count()).select_from(SignupIntake)) == 4


def test_a_failing_writer_answers_an_error_page_not_check_your_inbox(app, client, db, monkeypatch):
    grouped_engine(app)

    def broken(*_args):
        raise OperationalError("INSERT INTO signup_intake", {}, Exception("disk is full"))

    monkeypatch.setattr(intake, "_write_intake_row", broken)
    monkeypatch.setattr(intake, "_write_intake_rows", broken)
    r = post_signup(client, "lost@example.com")
    assert r.status_code == 503
    assert "check-your-inbox" not in (r.headers.get("Location") or "")
    assert "try again in a minute" in r.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(SignupIntake)) == 0


def test_a_writer_that_never_commits_fails_the_request_with_a_clear_error(app, clock, monkeypatch):
    engine = grouped_engine(app)
    stuck = threading.Event()
    monkeypatch.setattr(intake, "_write_intake_row", lambda *_a: stuck.wait(5))
    monkeypatch.setattr(intake_writer, "WAIT_SECONDS", 0.2)
    with pytest.raises(intake_writer.IntakeWriteError, match="not committed within"):
        intake.record_intake(engine, row(1, clock))
    stuck.set()


def test_the_setting_turns_group_commit_off(app_config, db_url):
    from funnel import create_app

    for on in (True, False):
        app = create_app({**app_config, "SIGNUP_GROUP_COMMIT": on})
        engine = app.extensions["funnel"].intake()
        expected = on and db_url.startswith("postgresql")
        assert bool(intake_writer._GROUPED.get(engine)) is expected
        app.extensions["funnel"].engine.dispose()
