"""Import from the browser: upload, map, preview (nothing written), confirm, progress,
report; consent source required for confirmed; opt-in emails; what a re-import changes."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from funnel.importing import import_jobs
from funnel.models import ConsentRecord, ImportJob, Subscriber
from tests.admin_support import ADMIN, token_on

CSV = ("E-mail,Given name,Club\r\n"
       "ann@example.com,Ann,Harriers\r\n"
       "not-an-address,Bob,Harriers\r\n"
       "cat@example.com,Cat,Striders\r\n"
       "ANN@example.com,Ann again,Harriers\r\n")


def upload(client, text: str | bytes, name: str = "club.csv"):
    data = text.encode() if isinstance(text, str) else text
    return client.post("/admin/import/", data={
        "csrf_token": token_on(client, "/admin/import/"),
        "file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def job_id(resp) -> str:
    m = re.search(r"/admin/import/([^/]+)/map", resp.headers["Location"])
    assert m, resp.headers.get("Location")
    return m.group(1)


def preview(client, jid: str, mapping: list[str], mode: str = "pending", source: str = ""):
    data = {f"col-{i}": m for i, m in enumerate(mapping)}
    return client.post(f"/admin/import/{jid}/preview", data={
        "csrf_token": token_on(client, f"/admin/import/{jid}/map"), "mode": mode,
        "consent_source": source, **data})


def confirm(client, jid: str):
    return client.post(f"/admin/import/{jid}/confirm", data={
        "csrf_token": token_on(client, "/admin/import/")})


def run_worker_jobs(app, clock):
    rt = app.extensions["funnel"]
    return import_jobs.run_pending(rt.sessions, rt.settings, clock.now)


def count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count()).select_from(Subscriber))


def full_import(app, client, clock, text=CSV, mode="pending", source="", name="club.csv",
                mapping=("email", "first_name", "")):
    jid = job_id(upload(client, text, name))
    assert preview(client, jid, list(mapping), mode, source).status_code == 200
    confirm(client, jid)
    run_worker_jobs(app, clock)
    return jid


def test_mapping_is_guessed_and_preview_writes_nothing(app, logged_in, db, clock):
    resp = upload(logged_in, CSV)
    jid = job_id(resp)
    page = logged_in.get(f"/admin/import/{jid}/map").get_data(as_text=True)
    assert re.search(r'id="col-0".*?value="email" selected', page, re.DOTALL)
    assert re.search(r'id="col-1".*?value="first_name" selected', page, re.DOTALL)
    page = preview(logged_in, jid, ["email", "first_name", ""]).get_data(as_text=True)
    assert "Nothing has been written yet" in page
    assert re.search(r'data-outcome="added">2<', page)
    assert re.search(r'data-outcome="duplicates">1<', page)
    assert re.search(r'data-outcome="bad">1<', page)
    assert "not-an-address" in page and "<td class=\"num\">3</td>" in page  # line 3, why
    assert count(db) == 0


def test_confirm_runs_in_the_worker_with_progress_and_a_report(app, logged_in, db, clock):
    jid = job_id(upload(logged_in, CSV))
    preview(logged_in, jid, ["email", "first_name", ""])
    confirm(logged_in, jid)
    assert count(db) == 0  # not in the request
    state = logged_in.get(f"/admin/import/{jid}.json").get_json()
    assert state == {"state": "queued", "rows_done": 0, "rows_total": 4}
    assert run_worker_jobs(app, clock) == 1
    assert logged_in.get(f"/admin/import/{jid}.json").get_json() == {
        "state": "done", "rows_done": 4, "rows_total": 4}
    page = logged_in.get(f"/admin/import/{jid}").get_data(as_text=True)
    assert "Import finished" in page and re.search(r'data-outcome="added">2<', page)
    assert count(db) == 2
    assert {s.status for s in db.scalars(select(Subscriber))} == {"pending"}
    # Confirming twice does not import twice.
    confirm(logged_in, jid)
    assert run_worker_jobs(app, clock) == 0


@pytest.mark.parametrize("source", ["", "   ", "ok"])
def test_confirmed_needs_a_consent_source(logged_in, db, source):
    jid = job_id(upload(logged_in, CSV))
    resp = preview(logged_in, jid, ["email", "first_name", ""], "confirmed", source)
    assert resp.status_code == 422
    assert "where their consent came from" in resp.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(ImportJob.state)) == "uploaded"


def test_confirmed_import_keeps_the_consent_source_per_person(app, logged_in, db, clock):
    full_import(app, logged_in, clock, mode="confirmed",
                source="Paper sign-up sheet, Spring 10K 2026")
    db.rollback()
    subs = db.scalars(select(Subscriber)).all()
    assert {s.status for s in subs} == {"confirmed"}
    for s in subs:
        record = db.scalar(select(ConsentRecord).where(ConsentRecord.subscriber_id == s.id))
        assert "Paper sign-up sheet, Spring 10K 2026" in record.text
        assert record.stated_by == ADMIN


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00e\x00m", "not UTF-8"),
    (b"name\r\nAnn\r\n", None),
])
def test_bad_files_are_refused_clearly(logged_in, db, content, message):
    resp = upload(logged_in, content)
    if message is None:  # no email column: refused at the mapping step
        jid = job_id(resp)
        resp = preview(logged_in, jid, ["first_name"])
        assert resp.status_code == 422
        assert "Choose which column holds the email address" in resp.get_data(as_text=True)
    else:
        assert resp.status_code == 303
        assert message in logged_in.get("/admin/import/").get_data(as_text=True)
    assert count(db) == 0


def test_two_columns_mapped_to_email_are_refused(logged_in, db):
    jid = job_id(upload(logged_in, CSV))
    resp = preview(logged_in, jid, ["email", "email", ""])
    assert resp.status_code == 422 and "Two columns" in resp.get_data(as_text=True)


def test_reimport_as_confirmed_confirms_earlier_pending_imports_only(app, logged_in, db, clock,
                                                                     client):
    """The rule (README): a confirmed re-import confirms people an earlier import left
    pending; it never touches people who signed up themselves and have not yet
    confirmed, nor anyone unsubscribed, bounced or complained."""
    full_import(app, logged_in, clock)  # ann and cat, pending
    from tests.conftest import sign_up

    sign_up(client, "self@example.com")  # pending through the public form
    db.rollback()
    cat = db.scalar(select(Subscriber).where(Subscriber.email == "cat@example.com"))
    cat.status = "unsubscribed"
    db.commit()
    text = CSV + "self@example.com,Self,Harriers\r\n"
    full_import(app, logged_in, clock, text=text, mode="confirmed",
                source="Club membership form with newsletter tick box", name="club2.csv")
    db.rollback()
    status = dict(db.execute(select(Subscriber.email, Subscriber.status)).all())
    assert status == {"ann@example.com": "confirmed", "cat@example.com": "unsubscribed",
                      "self@example.com": "pending"}
    ann = db.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
    assert ann.next_due_at == clock.now
    actions = [c.action for c in db.scalars(select(ConsentRecord).where(
        ConsentRecord.subscriber_id == ann.id).order_by(ConsentRecord.id))]
    assert actions == ["import", "confirm"]


def test_optin_email_for_pending_imports_is_capped(app, logged_in, db, clock, outbox):
    from dataclasses import replace

    rt = app.extensions["funnel"]
    rt.settings = replace(rt.settings, import_optin_daily_max=1)
    jid = full_import(app, logged_in, clock)
    page = logged_in.get(f"/admin/import/{jid}").get_data(as_text=True)
    assert "2 people from this import" in page
    logged_in.post(f"/admin/import/{jid}/optin",
                   data={"csrf_token": token_on(logged_in, f"/admin/import/{jid}")})
    assert len(outbox) == 0  # queued, not sent in the request
    from funnel.runtime import make_worker

    def worker_pass() -> int:
        """One worker pass; returns how many opt-in emails went out in it."""
        before = len(outbox)
        make_worker(rt).run_pass(clock.now)  # queues within the cap (its chores)…
        make_worker(rt).run_pass(clock.now)  # …and sends what is queued
        return len(outbox) - before

    assert worker_pass() == 1  # the daily cap
    assert worker_pass() == 0
    clock.advance(days=1)
    assert worker_pass() == 1
    clock.advance(days=1)
    assert worker_pass() == 0  # each person once
    assert sorted(m["To"] for m in outbox.messages()) == ["ann@example.com", "cat@example.com"]


def test_cli_confirmed_requires_a_consent_source(app, runner, db, tmp_path):
    f = tmp_path / "list.csv"
    f.write_text("email\nann@example.com\n")
    result = runner.invoke(args=["subscribers", "import", str(f), "--confirmed"])
    assert result.exit_code != 0 and "--consent-source" in result.output
    assert count(db) == 0
    result = runner.invoke(args=["subscribers", "import", str(f), "--confirmed",
                                 "--consent-source", "Race entry form, 2026"])
    assert result.exit_code == 0, result.output
    db.rollback()
    record = db.scalar(select(ConsentRecord))
    assert "Race entry form, 2026" in record.text
