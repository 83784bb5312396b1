"""``subscribers import`` and ``subscribers export``: validation, safety, round trips."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.db import make_engine
from funnel.importing import csv_files, importer
from funnel.models import ConsentRecord, Subscriber
from funnel.runtime import make_worker
from funnel.subscribers import privacy


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def listed(db) -> dict[str, Subscriber]:
    db.rollback()
    return {s.email: s for s in db.scalars(select(Subscriber))}


def run_import(runner, path: Path, *extra: str):
    result = runner.invoke(args=["subscribers", "import", str(path), *extra])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result


def test_bad_rows_are_reported_by_line_and_the_rest_imported(runner, db, tmp_path):
    path = write(tmp_path / "list.csv", (
        "Email,First_Name,status\n"          # 1: header, any case
        "ann@example.com,Ann,\n"             # 2
        "not-an-address,Bob,\n"              # 3
        "cat@example.com," + "C" * 81 + ",\n"  # 4
        "dan@example.com,Dan,vip\n"          # 5
        "eve@example.com,\"Eve\nSmith\",\n"  # 6-7: a quoted line break
        "fay@example.com,Fay,,extra\n"       # 8
        "\n"                                 # 9: blank lines are skipped
        ",Nobody,\n"                         # 10
        "gus@example.com,Gus,unsubscribed\n"  # 11
    ))
    result = run_import(runner, path)
    assert "line 3: That email address doesn't look right" in result.output
    assert "line 4: That first name is too long (80 characters at most)." in result.output
    assert "line 5: unknown status 'vip'" in result.output
    assert "line 6: Please use a first name without line breaks." in result.output
    assert "line 8: 4 cells but the header has 3 columns" in result.output
    assert "line 10: the email is empty" in result.output
    assert "line 2:" not in result.output and "line 11:" not in result.output
    assert "8 rows: 2 added" in result.output and "6 bad" in result.output
    people = listed(db)
    assert set(people) == {"ann@example.com", "gus@example.com"}
    assert (people["ann@example.com"].status, people["ann@example.com"].first_name) == (
        "pending", "Ann")
    assert people["gus@example.com"].status == "unsubscribed"


def test_rerunning_adds_nothing_and_never_touches_existing_subscribers(
        runner, db, tmp_path, client, outbox):
    from tests.conftest import sign_up_and_confirm

    sign_up_and_confirm(client, outbox, "known@example.com", "Kim")
    path = write(tmp_path / "list.csv", "email,first_name,status\n"
                 "known@example.com,Somebody Else,unsubscribed\n"
                 "new@example.com,Nia,\n"
                 "NEW@example.com,Nia again,\n")
    first = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "3 rows: 1 added, 1 already on the list, 1 repeated in the file" in first.output
    second = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "3 rows: 0 added, 2 already on the list, 1 repeated in the file" in second.output
    people = listed(db)
    assert len(people) == 2
    known = people["known@example.com"]
    assert (known.status, known.first_name) == ("confirmed", "Kim")
    assert people["new@example.com"].first_name == "Nia"
    assert db.scalar(select(func.count()).select_from(ConsentRecord)
                     .where(ConsentRecord.action == "import")) == 1


def test_batches_change_nothing_in_the_outcome(runner, db, tmp_path, app, clock,
                                               make_subscriber, monkeypatch):
    """Rows go in batches (each staged and committed on its own); with a batch of two
    rows, repeats, suppressed and listed addresses still fall where they belong,
    every new person gets exactly one consent record, and ids follow the file."""
    monkeypatch.setattr(importer, "BATCH", 2)
    make_subscriber("listed@example.com", status="pending", first_name="Lee")
    db.add(Subscriber(email="gone@example.com", status="confirmed", timezone="UTC",
                      created_at=clock.now))
    db.commit()
    privacy.erase(db, db.scalar(select(Subscriber).where(Subscriber.email == "gone@example.com")),
                  clock.now)
    path = write(tmp_path / "list.csv", "email,first_name\n"
                 "a@example.com,A\n"        # 2  batch 1
                 "b@example.com,B\n"        # 3  batch 1
                 "listed@example.com,X\n"   # 4  batch 2: already there, untouched
                 "gone@example.com,G\n"     # 5  batch 2: suppressed
                 "nope,N\n"                 # 6  bad
                 "A@Example.com,A again\n"  # 7  repeat of line 2, from an earlier batch
                 "c@example.com,C\n"        # 8  batch 3
                 "gone@example.com,G\n"     # 9  repeat of a suppressed row
                 "d@example.com,D\n")       # 10 batch 3
    result = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert ("9 rows: 4 added, 1 already on the list, 2 repeated in the file, "
            "1 refused (suppressed), 1 bad") in result.output
    assert "line 6:" in result.output
    people = listed(db)
    assert set(people) == {"listed@example.com", "a@example.com", "b@example.com",
                           "c@example.com", "d@example.com"}
    assert (people["listed@example.com"].status, people["listed@example.com"].first_name) == (
        "pending", "Lee")
    assert people["a@example.com"].first_name == "A"
    new = sorted((s.id, s.email) for s in people.values() if s.email != "listed@example.com")
    assert [e for _id, e in new] == ["a@example.com", "b@example.com", "c@example.com",
                                     "d@example.com"]
    records = db.execute(select(ConsentRecord.subscriber_id, ConsentRecord.text)
                         .where(ConsentRecord.action == "import")).all()
    assert sorted(sid for sid, _t in records) == [i for i, _e in new]
    assert all("Club sign-up sheet, 2026" in text for _sid, text in records)
    again = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "9 rows: 0 added, 5 already on the list, 2 repeated in the file" in again.output


def test_an_import_cut_short_keeps_what_went_in_and_runs_again(app, db, clock, monkeypatch):
    """The file is read a batch ahead, in a thread: a read failing halfway still
    reaches the caller, the batches before it stay committed, and a second run
    adds exactly the rest."""
    monkeypatch.setattr(importer, "BATCH", 2)
    emails = [f"r{i}@example.com" for i in range(5)]

    def rows(fail_after: int | None):
        for i, email in enumerate(emails):
            if i == fail_after:
                raise OSError("the disk went away")
            yield i + 2, {"email": email}

    sessions = app.extensions["funnel"].sessions
    with sessions() as s, pytest.raises(OSError, match="disk went away"):
        importer.import_rows(s, rows(fail_after=3), confirmed=False, now=clock.now)
    assert set(listed(db)) == set(emails[:2])
    with sessions() as s:
        report = importer.import_rows(s, rows(fail_after=None), confirmed=False, now=clock.now)
    assert (report.added, report.already_listed) == (3, 2)
    assert set(listed(db)) == set(emails)


def test_imported_times_are_stored_as_every_other_time_is(runner, db, tmp_path, clock,
                                                          make_subscriber):
    """The batch goes in through the driver, not the ORM; its times must still be stored
    in the ORM's form, or SQLite's text comparisons (what is due, newest first) and
    the date filters would misplace imported people."""
    from sqlalchemy import text

    make_subscriber("made@example.com", status="confirmed")
    path = write(tmp_path / "list.csv", "email\nimported@example.com\n")
    run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    db.rollback()
    raw = {email: times for email, times in db.execute(text(
        "SELECT email, CAST(created_at AS TEXT) || '|' || CAST(confirmed_at AS TEXT) || '|' "
        "|| CAST(next_due_at AS TEXT) FROM subscriber"))}
    assert raw["imported@example.com"] == raw["made@example.com"]


def test_suppressed_addresses_are_refused(runner, db, tmp_path, app, clock):
    db.add(Subscriber(email="gone@example.com", status="confirmed", timezone="UTC",
                      created_at=clock.now))
    db.commit()
    privacy.erase(db, db.scalar(select(Subscriber)), clock.now)
    path = write(tmp_path / "list.csv", "email,first_name\nGone@Example.com,G\nok@example.com,O\n")
    result = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "2 rows: 1 added, 0 already on the list, 0 repeated in the file, 1 refused" \
        in result.output
    assert set(listed(db)) == {"ok@example.com"}


def test_confirmed_import_starts_the_sequence_and_records_the_statement(
        runner, db, tmp_path, app, clock, outbox):
    path = write(tmp_path / "old-list.csv", "email,first_name,source\nrun@example.com,Ria,podcast\n")
    result = run_import(runner, path, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "start the sequence" in result.output
    sub = listed(db)["run@example.com"]
    assert (sub.status, sub.confirmed_at, sub.utm_source) == ("confirmed", clock.now, "podcast")
    [consent] = sub.consents
    assert consent.action == "import"
    assert "marketer stated" in consent.text and consent.page == "import: old-list.csv"
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    [welcome] = outbox.to("run@example.com")
    assert "Part 1" in welcome["Subject"]


def test_without_confirmed_nobody_is_mailed_and_confirmed_rows_are_refused(
        runner, db, tmp_path, app, clock, outbox):
    path = write(tmp_path / "list.csv",
                 "email,first_name,status\nquiet@example.com,Q,\nsaid@example.com,S,confirmed\n")
    result = run_import(runner, path)
    assert "line 3: status 'confirmed' needs --confirmed" in result.output
    assert listed(db)["quiet@example.com"].status == "pending"
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    assert len(outbox) == 0


def test_unusable_files_are_refused_whole(runner, db, tmp_path):
    no_email = write(tmp_path / "names.csv", "name,first_name\nx@example.com,X\n")
    result = runner.invoke(args=["subscribers", "import", str(no_email)])
    assert result.exit_code != 0 and "no 'email' column" in result.output
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,first_name\nzoe@example.com,Zoë\n".encode("latin-1"))
    result = runner.invoke(args=["subscribers", "import", str(latin1)])
    assert result.exit_code != 0 and "not UTF-8" in result.output
    assert listed(db) == {}


def test_progress_bar_is_shown(runner, tmp_path):
    path = write(tmp_path / "list.csv", "email\n" + "".join(f"p{i}@example.com\n"
                                                              for i in range(1500)))
    result = run_import(runner, path)
    assert "Importing list.csv" in result.output
    assert "1500 rows: 1500 added" in result.output


def test_export_escapes_spreadsheet_formulas_and_imports_them_back(runner, db, tmp_path, clock):
    db.add(Subscriber(email="x@example.com", first_name="=HYPERLINK(\"http://evil\")",
                      status="confirmed", timezone="UTC", created_at=clock.now,
                      confirmed_at=clock.now, utm_source="@mention"))
    db.commit()
    out = tmp_path / "out.csv"
    result = runner.invoke(args=["subscribers", "export", str(out)])
    assert result.exit_code == 0 and "exported 1 subscribers" in result.output
    with out.open(newline="", encoding="utf-8") as fh:
        [row] = list(csv.DictReader(fh))
    assert row["first_name"] == "'=HYPERLINK(\"http://evil\")"
    assert row["source"] == "'@mention"
    assert row["confirmed_at"] == clock.now.isoformat()
    assert csv_files.unescape_cell(row["first_name"]) == "=HYPERLINK(\"http://evil\")"


def test_export_filters_by_status(runner, db, tmp_path, clock):
    for i, status in enumerate(["confirmed", "pending", "confirmed"]):
        db.add(Subscriber(email=f"s{i}@example.com", status=status, timezone="UTC",
                          created_at=clock.now))
    db.commit()
    result = runner.invoke(args=["subscribers", "export", "--status", "confirmed"])
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("email,first_name,status,source")
    assert [ln.split(",")[0] for ln in lines[1:]] == ["s0@example.com", "s2@example.com"]


def test_round_trip_of_5000_subscribers(runner, db, tmp_path, app, _sqlite_template):
    source = tmp_path / "five-thousand.csv"
    statuses = ["", "", "", "unsubscribed", "pending", "bounced"]
    with source.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "first_name", "status", "source"])
        for i in range(5000):
            w.writerow([f"Runner.{i}@Example{i % 7}.org", f"Rünner {i}" if i % 3 else "",
                        statuses[i % len(statuses)], "club" if i % 2 else ""])
    result = run_import(runner, source, "--confirmed", "--consent-source", "Club sign-up sheet, 2026")
    assert "5000 rows: 5000 added" in result.output
    exported = tmp_path / "exported.csv"
    assert runner.invoke(args=["subscribers", "export", str(exported)]).exit_code == 0

    # Into a fresh, empty database.
    fresh_path = tmp_path / "fresh.db"
    shutil.copy(_sqlite_template, fresh_path)
    engine = make_engine(f"sqlite:///{fresh_path}")
    with Session(engine) as fresh, exported.open(newline="", encoding="utf-8") as fh:
        _names, rows = csv_files.read_csv(fh)
        report = importer.import_rows(fresh, rows, confirmed=True, now=app.config["CLOCK"]())
        assert (report.added, report.bad) == (5000, [])
        again = {tuple(r) for r in fresh.execute(select(
            Subscriber.email, Subscriber.first_name, Subscriber.status, Subscriber.utm_source))}
    engine.dispose()
    db.rollback()
    original = {tuple(r) for r in db.execute(select(
        Subscriber.email, Subscriber.first_name, Subscriber.status, Subscriber.utm_source))}
    assert len(original) == 5000
    assert again == original
    assert ("runner.3@example3.org", None, "unsubscribed", "club") in original
