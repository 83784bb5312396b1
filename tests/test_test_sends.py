"""Test sends from the studio: the web request only queues them, the worker sends each
exactly once, and the coach sees on the page how each went."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from funnel.models import AdminTestSend
from funnel.runtime import make_worker
from funnel.studio import test_sends
from funnel.transports import AuthError, SendResult, TransientSendError
from tests.admin_support import ADMIN, token_on
from tests.faults import Crash, ScriptedTransport
from tests.newsletter_support import copy_emails, write_broadcast

PAGE = "/admin/emails/staying-strong"
SUBJECT = "[TEST] Part 8: staying strong for the rest of the season"


@pytest.fixture
def emails_dir(tmp_path):
    return copy_emails(tmp_path / "emails")


@pytest.fixture
def app_config(app_config, emails_dir):
    return {**app_config, "EMAILS_DIR": str(emails_dir)}


def ask(client, to="me@example.com", page=PAGE):
    """Press "Send test email" on the preview page; returns the page shown after."""
    resp = client.post(page + "/send-test", data={"to": to, "csrf_token": token_on(client, page)})
    assert resp.status_code == 303
    return client.get(page).get_data(as_text=True)


def worker(app, transport=None):
    return make_worker(app.extensions["funnel"], transport=transport)


def scripted(app, *script):
    """A transport that plays ``script``, handing what it accepts to the real outbox."""
    t = ScriptedTransport(inner=app.extensions["funnel"].transport)
    t.script = list(script)
    return t


def rows(db) -> list[AdminTestSend]:
    db.rollback()
    return list(db.scalars(select(AdminTestSend).order_by(AdminTestSend.id)))


def test_the_request_queues_and_the_worker_sends_it_once(app, logged_in, db, clock, outbox):
    page = ask(logged_in, "Me@Example.com")
    assert "Test queued for me@example.com: it goes out within a minute." in page
    assert len(outbox) == 0
    [row] = rows(db)
    assert (row.state, row.address, row.email_path) == (
        "queued", "me@example.com", "sequences/plan/08-staying-strong.md")
    report = worker(app).run_pass(clock.now)
    assert (report.sent, report.claimed) == (1, 1)
    [msg] = outbox.messages()
    assert (msg["To"], msg["Subject"]) == ("me@example.com", SUBJECT)
    [row] = rows(db)
    assert (row.state, row.attempts, row.sent_at, row.error) == ("sent", 1, clock.now, None)
    assert row.message_id and row.message_id in msg["Message-ID"]
    assert f"<strong>sent at {clock.now:%H:%M}</strong>" in logged_in.get(PAGE).get_data(
        as_text=True)
    # Drained again, by a new worker too: nothing more goes out.
    assert worker(app).run_pass(clock.now).sent == 0
    clock.advance(hours=1)
    assert worker(app).run_pass(clock.now).sent == 0
    assert len(outbox) == 1


def test_a_second_worker_draining_mid_send_neither_resends_nor_fails_it(
        app, logged_in, db, clock, outbox):
    ask(logged_in)
    second: list = []
    # While the first worker is handing the test to the provider, another drains.
    first = scripted(app, lambda: second.append(worker(app).run_pass(clock.now)))
    assert worker(app, first).run_pass(clock.now).sent == 1
    assert (second[0].sent, second[0].failed, second[0].claimed) == (0, 0, 0)
    assert [r.state for r in rows(db)] == ["sent"]
    assert len(outbox) == 1


def test_two_workers_at_once_send_each_test_exactly_once(app, logged_in, db, clock, outbox):
    for i in range(6):
        ask(logged_in, f"me{i}@example.com")
    start = threading.Barrier(2)
    reports: list = []

    def run() -> None:
        w = worker(app)
        start.wait()
        reports.append(w.run_pass(clock.now))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.sent for r in reports) == 6
    assert sorted(m["To"] for m in outbox.messages()) == [f"me{i}@example.com" for i in range(6)]
    assert {r.state for r in rows(db)} == {"sent"}


def test_a_refused_send_is_shown_as_failed_with_the_providers_reason(
        app, logged_in, db, clock, outbox):
    ask(logged_in)
    failing = scripted(app, "reject")
    assert worker(app, failing).run_pass(clock.now).failed == 1
    assert len(outbox) == 0
    [row] = rows(db)
    assert (row.state, row.error) == ("failed", "400 invalid address")
    page = logged_in.get(PAGE).get_data(as_text=True)
    assert "<strong>failed: 400 invalid address</strong>" in page
    assert worker(app).run_pass(clock.now).sent == 0  # a failed test is not sent later


def test_a_temporary_failure_is_tried_again_a_few_times_then_failed(
        app, logged_in, db, clock, outbox):
    ask(logged_in)
    flaky = scripted(app, TransientSendError("503 try later"))
    assert worker(app, flaky).run_pass(clock.now).retried == 1
    [row] = rows(db)
    assert (row.state, row.attempts) == ("queued", 1) and row.next_attempt_at > clock.now
    page = logged_in.get(PAGE).get_data(as_text=True)
    assert "<strong>queued</strong>" in page and "the last try failed: 503 try later" in page
    assert worker(app).run_pass(clock.now).sent == 0  # not before its time
    clock.advance(minutes=2)
    assert worker(app).run_pass(clock.now).sent == 1
    assert [r.state for r in rows(db)] == ["sent"] and len(outbox) == 1

    ask(logged_in, "other@example.com")
    down = scripted(app, *[TransientSendError("503 down")] * test_sends.MAX_ATTEMPTS)
    for _ in range(test_sends.MAX_ATTEMPTS):
        worker(app, down).run_pass(clock.now)
        clock.advance(minutes=10)
    last = rows(db)[-1]
    assert last.state == "failed" and last.attempts == test_sends.MAX_ATTEMPTS
    assert last.error == f"gave up after {test_sends.MAX_ATTEMPTS} tries: 503 down"
    assert len(outbox.to("other@example.com")) == 0


def test_a_test_a_worker_died_sending_is_marked_failed_never_resent(
        app, logged_in, db, clock, outbox):
    ask(logged_in)
    with pytest.raises(Crash):
        worker(app, scripted(app, Crash())).run_pass(clock.now)
    [row] = rows(db)
    assert row.state == "sending"  # the intent was committed before the provider call
    # Its lease still runs: another worker leaves it alone.
    assert worker(app).run_pass(clock.now).failed == 0
    assert rows(db)[0].state == "sending"
    clock.advance(seconds=app.extensions["funnel"].settings.lease_seconds + 1)
    assert worker(app).run_pass(clock.now).failed == 1
    [row] = rows(db)
    assert (row.state, row.error) == ("failed", test_sends.INTERRUPTED)
    assert len(outbox) == 0
    assert f"failed: {test_sends.INTERRUPTED}" in logged_in.get(PAGE).get_data(as_text=True)


def test_refused_credentials_fail_the_test_and_stop_the_worker(app, logged_in, db, clock, outbox):
    ask(logged_in)
    with pytest.raises(AuthError):
        worker(app, scripted(app, AuthError("401 bad key"))).run_pass(clock.now)
    [row] = rows(db)
    assert row.state == "failed" and "refused our credentials (401 bad key)" in row.error
    assert len(outbox) == 0


def test_an_email_broken_after_queueing_fails_without_sending(
        app, logged_in, db, clock, outbox, emails_dir):
    write_broadcast(emails_dir, "hills", body="Hi {{ first_name }},\n\nHills.\n")
    assert "Test queued" in ask(logged_in, page="/admin/emails/hills")
    write_broadcast(emails_dir, "hills", body="Hi {{ frist_name }},\n\nHills.\n")
    assert worker(app).run_pass(clock.now).failed == 1
    [row] = rows(db)
    assert row.state == "failed" and row.error.startswith("the email does not render now")
    assert len(outbox) == 0


@pytest.mark.parametrize("to, page, message", [
    ("not an address", PAGE, "Not queued: "),
    ("", PAGE, "Not queued: "),
    ("me@example.com", "/admin/emails/hills", "Not queued: the email does not render"),
])
def test_bad_input_is_refused_and_queues_nothing(
        app, logged_in, db, clock, outbox, emails_dir, to, page, message):
    write_broadcast(emails_dir, "hills", body="Hi {{ frist_name }},\n\nHills.\n")
    shown = ask(logged_in, to, page)
    assert message in shown and 'role="alert"' in shown
    assert rows(db) == []
    worker(app).run_pass(clock.now)
    assert len(outbox) == 0


def test_unknown_emails_and_subjects_are_refused(app, logged_in, db, clock, outbox, emails_dir):
    token = token_on(logged_in, PAGE)
    assert logged_in.post("/admin/emails/nope/send-test",
                          data={"to": "me@example.com", "csrf_token": token}).status_code == 404
    assert logged_in.post("/admin/broadcasts/nope/send-test",
                          data={"csrf_token": token}).status_code == 404
    write_broadcast(emails_dir, "two", subjects="[\"One\", \"Two\"]")
    resp = logged_in.post("/admin/broadcasts/two/send-test",
                          data={"csrf_token": token, "subject_variant": "7"},
                          follow_redirects=True)
    assert "Not queued: this newsletter has no subject number &#39;7&#39;." in resp.get_data(
        as_text=True)
    assert rows(db) == []
    resp = logged_in.post("/admin/broadcasts/two/send-test",
                          data={"csrf_token": token, "subject_variant": "1"},
                          follow_redirects=True)
    assert f"Test queued for {ADMIN}" in resp.get_data(as_text=True)
    assert "(subject \"Two\")" in resp.get_data(as_text=True)
    worker(app).run_pass(clock.now)
    [msg] = outbox.to(ADMIN)
    assert msg["Subject"] == "[TEST] Two"


def test_a_flood_of_tests_is_refused(app, logged_in, db, clock, outbox):
    for i in range(test_sends.FLOOD_LIMIT):
        assert "Test queued" in ask(logged_in, f"me{i}@example.com")
        clock.advance(seconds=30)
    page = ask(logged_in, "one-more@example.com")
    assert "Not queued: 10 tests in 10 minutes is the most we send; try again in 5 minutes." \
        in page
    assert len(rows(db)) == test_sends.FLOOD_LIMIT
    # A failed test does not count against the limit.
    db.execute(AdminTestSend.__table__.update().where(AdminTestSend.address == "me0@example.com")
               .values(state="failed", error="400 invalid address"))
    db.commit()
    assert "Test queued" in ask(logged_in, "one-more@example.com")
    clock.advance(minutes=10)
    assert "Test queued" in ask(logged_in, "later@example.com")
    assert db.scalar(select(func.count()).select_from(AdminTestSend)) == 12


def test_the_list_follows_a_test_as_json_for_the_page(app, logged_in, db, clock):
    ask(logged_in)
    data = logged_in.get("/admin/test-sends/staying-strong.json").get_json()
    assert data["pending"] is True and "<strong>queued</strong>" in data["html"]
    worker(app).run_pass(clock.now)
    data = logged_in.get("/admin/test-sends/staying-strong.json").get_json()
    assert data["pending"] is False and f"sent at {clock.now:%H:%M}" in data["html"]
    # Another page's tests stay on that page.
    other = logged_in.get("/admin/test-sends/first-issue.json").get_json()
    assert other == {"html": other["html"], "pending": False} and "To " not in other["html"]


def test_a_crash_between_claim_and_intent_leaves_the_test_to_send_later(
        app, logged_in, db, clock, outbox):
    """Claimed but no intent written: nothing can have gone out, so it is sent once the
    dead worker's lease has run out."""
    ask(logged_in)
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        from funnel.db import claim

        q = select(AdminTestSend.id)
        assert claim(s, q, AdminTestSend, lease_until=clock.now + timedelta(minutes=5),
                     lease_owner="dead") != []
    assert worker(app).run_pass(clock.now).sent == 0
    clock.advance(minutes=6)
    assert worker(app).run_pass(clock.now).sent == 1
    assert len(outbox) == 1


def test_a_viewer_cannot_queue_a_test(app, client, db, clock, outbox):
    from funnel.accounts.passwords import hash_password
    from funnel.models import AdminUser
    from tests.admin_support import PASSWORD

    db.add(AdminUser(email="viewer@example.com", password_hash=hash_password(PASSWORD),
                     created_at=clock.now, role="viewer"))
    db.commit()
    token = token_on(client, "/admin/login")
    client.post("/admin/login", data={"email": "viewer@example.com", "password": PASSWORD,
                                      "csrf_token": token})
    resp = client.post(PAGE + "/send-test", data={"to": "me@example.com",
                                                  "csrf_token": token_on(client, "/admin/")})
    assert resp.status_code == 403
    assert client.get("/admin/test-sends/staying-strong.json").status_code == 403
    assert rows(db) == []


def test_the_provider_message_id_is_kept(app, logged_in, db, clock):
    ask(logged_in)

    class Provider(ScriptedTransport):
        def send(self, messages):
            return [SendResult(m.key, True, provider_id="sg-123") for m in messages]

    worker(app, Provider()).run_pass(clock.now)
    assert rows(db)[0].provider_id == "sg-123"


def test_finished_tests_go_after_a_month_and_a_waiting_one_stays(app, logged_in, db, clock, outbox):
    """The addresses typed for tests are not kept for ever: the worker's hourly purge
    deletes finished tests a month old; the page's recent list is what remains."""
    from sqlalchemy import update

    ask(logged_in, "old@example.com")
    ask(logged_in, "newer@example.com")
    worker(app).run_pass(clock.now)
    ask(logged_in, "waiting@example.com")  # queued, not yet sent: never purged
    for address, days in (("old@example.com", 31), ("newer@example.com", 29),
                          ("waiting@example.com", 40)):
        db.execute(update(AdminTestSend).where(AdminTestSend.address == address)
                   .values(requested_at=clock.now - timedelta(days=days)))
    db.commit()
    make_worker(app.extensions["funnel"]).pieces[0](clock.now, None)  # the purge alone
    assert [(r.address, r.state) for r in rows(db)] == [
        ("newer@example.com", "sent"), ("waiting@example.com", "queued")]
    page = logged_in.get(PAGE).get_data(as_text=True)
    assert "old@example.com" not in page and "newer@example.com" in page
