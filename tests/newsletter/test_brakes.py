"""The brakes and the warm-up: signed spam reports over 0.3 % pause a newsletter
mid-send and nothing more goes (newsletter or sequence; confirmations still do)
until an owner resumes; WARMUP_START spreads a newsletter over days."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from funnel.control import brakes
from funnel.models import AppState, Broadcast, Delivery, Subscriber
from tests.admin_support import ADMIN
from tests.conftest import csrf_token, sign_up
from tests.newsletter_support import run_worker, write_broadcast
from tests.sendgrid_support import Signer, post_events

N = 600


@pytest.fixture
def signer():
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    return {**app_config, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key,
            "WORKER_BATCH_SIZE": 200, "BRAKES_MIN_SENT": 200}


def many(db, clock, n: int) -> None:
    now = clock.now
    db.execute(insert(Subscriber), [
        {"public_id": secrets.token_urlsafe(12), "email": f"reader{i}@example.com",
         "status": "confirmed", "timezone": "Europe/London", "wants_newsletter": True,
         "created_at": now - timedelta(days=60), "confirmed_at": now - timedelta(days=59)}
        for i in range(n)])
    db.commit()


def sent(db, slug: str) -> list[Delivery]:
    db.rollback()
    return list(db.scalars(select(Delivery).where(Delivery.step_slug == slug,
                                                  Delivery.state == "sent")))


def complain(client, signer, deliveries: list[Delivery], ts: int):  # type: ignore[no-untyped-def]
    events = [{"event": "spamreport", "email": f"x{d.id}@example.com",
               "sg_event_id": f"spam-{d.public_id}", "timestamp": ts,
               "delivery_id": d.public_id} for d in deliveries]
    assert post_events(client, signer, events, ts).status_code in (200, 204)


def test_spam_reports_over_the_line_pause_a_newsletter_mid_send_until_resumed(
        app, client, db, clock, runner, outbox, emails_dir, signer, admin, monkeypatch):
    many(db, clock, N)
    write_broadcast(emails_dir, "spring-news")
    assert runner.invoke(args=["broadcast", "send", "spring-news"]).exit_code == 0
    # Reports arrive while the newsletter goes out: after its first batch of 200,
    # before the second, one reader marks it as spam (0.5 %, over 0.3 %).
    real = brakes.newsletter_allowance
    batches = []

    def reports_arrive(sessions, settings, transport, now):  # type: ignore[no-untyped-def]
        batches.append(now)
        if len(batches) == 2:
            complain(client, signer, sent(db, "spring-news")[:1], int(clock.now.timestamp()))
        return real(sessions, settings, transport, now)

    monkeypatch.setattr(brakes, "newsletter_allowance", reports_arrive)
    run_worker(runner)
    assert len(sent(db, "spring-news")) == 200  # stopped mid-send
    assert db.scalar(select(Broadcast.status)) == "sending"
    state = brakes.load(db)
    assert state.paused and "complaints at or over 0.3%" in state.reasons[0]
    assert "newsletter spring-news: 1 spam complaint(s)" in " ".join(state.reasons)
    # The admins are told by email, once.
    alerts = outbox.to(ADMIN)
    assert [m["Subject"] for m in alerts] == [
        "[Run Stronger] Sending paused: spam complaints or bounces too high"]

    # Nothing more goes, pass after pass and across a restart (every run_worker is a
    # new worker reading the state from the database)…
    for _ in range(3):
        clock.advance(hours=2)
        run_worker(runner)
    assert len(sent(db, "spring-news")) == 200
    # …but a confirmation still does.
    assert sign_up(client, "new.reader@example.com").status_code == 303
    assert outbox.to("new.reader@example.com")
    # The dashboard and status say why.
    assert "Newsletters and sequences paused" in runner.invoke(args=["status"]).output

    # Resuming is an owner's act; the figures then count again from zero.
    result = runner.invoke(args=["deliverability", "resume", "--by", "coach"])
    assert result.exit_code == 0 and "Resumed" in result.output
    run_worker(runner)
    got = sent(db, "spring-news")
    assert len(got) == N and len({d.subscriber_id for d in got}) == N  # each reader once
    db.rollback()
    assert db.scalar(select(Broadcast.status)) == "sent"
    assert not brakes.load(db).paused and brakes.load(db).resumed_by == "coach"


def test_bounces_over_five_percent_warn_without_pausing(app, client, db, clock, runner,
                                                         emails_dir, signer):
    many(db, clock, 200)
    write_broadcast(emails_dir, "bouncy")
    assert runner.invoke(args=["broadcast", "send", "bouncy"]).exit_code == 0
    run_worker(runner)
    ts = int(clock.now.timestamp())
    events = [{"event": "bounce", "email": f"b{d.id}@example.com", "type": "bounce",
               "sg_event_id": f"b-{d.public_id}", "timestamp": ts, "delivery_id": d.public_id,
               "reason": "550 no such user"} for d in sent(db, "bouncy")[:12]]  # 6 %
    assert post_events(client, signer, events, ts).status_code in (200, 204)
    run_worker(runner)
    db.rollback()
    state = brakes.load(db)
    assert state.level == "warn" and not state.paused
    assert "bounces at or over 5%" in state.reasons[0]


def test_an_admin_resumes_with_the_button(app, logged_in, db, clock):
    db.merge(AppState(key=brakes.STATE_KEY, value='{"level": "stop", "paused": true, '
                      '"reasons": ["the last 24 hours: too many complaints"]}'))
    db.commit()
    page = logged_in.get("/admin/sending/").get_data(as_text=True)
    assert "the last 24 hours: too many complaints" in page and 'id="resume"' in page
    resp = logged_in.post("/admin/sending/resume",
                          data={"csrf_token": csrf_token(logged_in, "/admin/sending/")})
    assert resp.status_code == 302
    db.rollback()
    assert not brakes.load(db).paused
    # Without the CSRF token nothing changes.
    db.merge(AppState(key=brakes.STATE_KEY, value='{"level": "stop", "paused": true}'))
    db.commit()
    assert logged_in.post("/admin/sending/resume").status_code == 400
    db.rollback()
    assert brakes.load(db).paused


def test_warmup_spreads_a_newsletter_over_days_and_says_when(app, db, clock, runner, emails_dir,
                                                             logged_in):
    app.extensions["funnel"].settings = app.extensions["funnel"].settings.__class__(
        **{**app.extensions["funnel"].settings.__dict__, "warmup_start": 50})
    many(db, clock, 200)
    write_broadcast(emails_dir, "big-news")
    assert runner.invoke(args=["broadcast", "send", "big-news"]).exit_code == 0
    page = logged_in.get("/admin/sending/").get_data(as_text=True)
    today = clock.now.date()
    for offset, n in ((0, 50), (1, 75), (2, 75)):
        day = (today + timedelta(days=offset)).isoformat()
        assert f'data-part="{day}">{n} on' in page, page
    run_worker(runner)
    run_worker(runner)
    assert len(sent(db, "big-news")) == 50  # the first day's share
    clock.advance(days=1)
    run_worker(runner)
    assert len(sent(db, "big-news")) == 125
    clock.advance(days=1)
    run_worker(runner)
    assert len(sent(db, "big-news")) == 200
    assert db.scalar(select(func.count()).select_from(Delivery)) == 200
