"""Failures seen and recoverable: a broken email shows on the dashboard within one
worker pass, the emails page marks it, held sends go out after the fix, and
failed sends can be retried per email and per subscriber."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from funnel.models import Delivery, Subscriber
from funnel.runtime import make_worker
from tests.admin_support import a_subscriber, post
from tests.drip import make_emails_dir


@pytest.fixture
def app_config(app_config, tmp_path):
    return {**app_config, "EMAILS_DIR": str(make_emails_dir(tmp_path / "emails"))}


def emails_dir(app) -> Path:
    return Path(app.extensions["funnel"].settings.emails_dir)


def break_step(app, name: str = "01-welcome.md") -> tuple[Path, str]:
    path = emails_dir(app) / "sequence" / name
    good = path.read_text()
    path.write_text(good.replace("{{ first_name }}", "{{ first_name | no_such_filter }}"))
    return path, good


def failed_delivery(db, clock, sub: Subscriber, slug: str = "welcome",
                    error: str = "550 mailbox unavailable") -> Delivery:
    d = Delivery(subscriber_id=sub.id, step_slug=slug, state="failed", attempts=1,
                 error=error, created_at=clock.now, sent_at=clock.now)
    db.add(d)
    sub.next_due_at = None
    db.commit()
    return d


def test_a_broken_email_is_on_the_dashboard_after_one_pass_and_goes_out_once_fixed(
        app, db, clock, logged_in, outbox):
    people = [a_subscriber(db, clock, f"p{i}@example.com") for i in range(3)]
    path, good = break_step(app)
    worker = make_worker(app.extensions["funnel"])
    worker.run_pass(clock.now)
    assert len(outbox) == 0
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert 'id="failures"' in page
    row = page[page.index('data-failing-step="welcome"'):]
    row = row[:row.index("</tr>")]
    assert ">3<" in row  # three sends of that email held
    assert "no_such_filter" in row  # with the reason
    emails = logged_in.get("/admin/emails/").get_data(as_text=True)
    assert 'data-broken="welcome"' in emails
    path.write_text(good)
    clock.advance(minutes=1)
    worker.run_pass(clock.now)
    assert sorted(m["To"] for m in outbox.messages()) == sorted(p.email for p in people)
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert 'data-failing-step="welcome"' not in page
    assert 'data-broken="welcome"' not in logged_in.get("/admin/emails/").get_data(as_text=True)


def test_retry_failed_sends_of_one_email(app, db, clock, logged_in, outbox):
    a = a_subscriber(db, clock, "a@example.com")
    b = a_subscriber(db, clock, "b@example.com")
    gone = a_subscriber(db, clock, "gone@example.com", status="unsubscribed")
    for sub in (a, b, gone):
        failed_delivery(db, clock, sub)
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert "550 mailbox unavailable" in page
    resp = post(logged_in, "/admin/failures/welcome/retry", "/admin/")
    assert resp.status_code == 303
    assert "2 failed sends of" in logged_in.get("/admin/").get_data(as_text=True)
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    # Never to someone who unsubscribed in between.
    assert sorted(m["To"] for m in outbox.messages()) == ["a@example.com", "b@example.com"]
    db.rollback()
    states = dict(db.execute(select(Delivery.subscriber_id, Delivery.state)).all())
    assert states == {a.id: "sent", b.id: "sent", gone.id: "failed"}


def test_retry_failed_sends_of_one_subscriber(app, db, clock, logged_in, outbox):
    a = a_subscriber(db, clock, "a@example.com")
    b = a_subscriber(db, clock, "b@example.com")
    failed_delivery(db, clock, a)
    failed_delivery(db, clock, b)
    page = logged_in.get(f"/admin/subscribers/{a.public_id}").get_data(as_text=True)
    assert "Retry failed emails" in page
    resp = post(logged_in, f"/admin/subscribers/{a.public_id}/retry",
                f"/admin/subscribers/{a.public_id}")
    assert resp.status_code == 303
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    assert [m["To"] for m in outbox.messages()] == ["a@example.com"]


def test_retry_of_an_email_that_still_does_not_render_is_refused(app, db, clock, logged_in,
                                                                   outbox):
    a = a_subscriber(db, clock, "a@example.com")
    failed_delivery(db, clock, a, error="render failed: no filter named 'no_such_filter'")
    break_step(app)
    resp = post(logged_in, "/admin/failures/welcome/retry", "/admin/")
    assert resp.status_code == 303
    page = logged_in.get("/admin/").get_data(as_text=True)
    assert "still has errors" in page
    db.rollback()
    assert db.scalar(select(Delivery.state)) == "failed"


def test_retry_needs_a_login_and_a_csrf_token(app, client, db, clock, admin):
    a = a_subscriber(db, clock, "a@example.com")
    failed_delivery(db, clock, a)
    resp = client.post("/admin/failures/welcome/retry")
    assert resp.status_code in (302, 400)
    db.rollback()
    assert db.scalar(select(Delivery.state)) == "failed"


def test_admins_are_emailed_about_failures_when_the_setting_is_on(app, db, clock, outbox,
                                                                  admin):
    from dataclasses import replace

    rt = app.extensions["funnel"]
    a = a_subscriber(db, clock, "a@example.com")
    break_step(app)
    make_worker(rt).run_pass(clock.now)
    assert [m["To"] for m in outbox.messages()] == []  # off (development): nothing to admins
    rt.settings = replace(rt.settings, failure_alerts=True)
    clock.advance(minutes=5)
    make_worker(rt).run_pass(clock.now)
    alerts = outbox.to(admin)
    assert len(alerts) == 1
    assert "could not be sent" in alerts[0]["Subject"]
    assert a.email not in outbox.text(alerts[0])  # no personal data in the alert
    clock.advance(minutes=5)
    make_worker(rt).run_pass(clock.now)
    assert len(outbox.to(admin)) == 1  # at most one alert per interval


def test_the_retry_button_follows_the_email_file_as_it_is_broken_and_fixed(
        app, db, clock, logged_in):
    """The check of the email files is kept between loads: it must not outlive an edit."""
    failed_delivery(db, clock, a_subscriber(db, clock, "a@example.com"))

    def row() -> str:
        page = logged_in.get("/admin/").get_data(as_text=True)
        rest = page[page.index('data-failing-step="welcome"'):]
        return rest[:rest.index("</tr>")]

    assert "Retry 1" in row()
    path, good = break_step(app)
    assert "fix it first" in row() and "Retry 1" not in row()
    path.write_text(good)
    assert "Retry 1" in row()
