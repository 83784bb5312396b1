"""MAIL_FALLBACK=smtp: SMTP takes over while SendGrid keeps failing and hands back
when it answers again; every reader gets each email once."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.models import Delivery, Subscriber
from funnel.runtime import make_worker
from funnel.transports import Message, SendResult, TransientSendError
from funnel.transports.fallback import FallbackTransport
from tests.admin_support import ADMIN, PASSWORD
from tests.conftest import csrf_token
from tests.sendgrid_support import API_KEY, FakeSendGrid, Reply, personalization_for
from tests.smtp_support import SMTPServer
from tests.test_sendgrid_worker import join

# -- the switch on its own, with stand-in transports --------------------------------


class Stub:
    idempotent = False
    max_batch = 10

    def __init__(self, name: str) -> None:
        self.name, self.script, self.got = name, [], Counter()

    def send(self, messages):  # type: ignore[no-untyped-def]
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        self.got.update(m.to for m in messages)
        return [SendResult(m.key, True, provider_id=self.name) for m in messages]


def msg(n: int) -> Message:
    return Message(key=f"k{n}", to=f"r{n}@example.com", subject="s", html="h", text="t",
                   sender="a@runstronger.example", date=datetime(2026, 12, 1, tzinfo=UTC),
                   message_id=f"<{n}@x>")


class Now:
    def __init__(self) -> None:
        self.t = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.t


def fallback() -> tuple[FallbackTransport, Stub, Stub, Now]:
    a, b, now = Stub("sendgrid"), Stub("smtp"), Now()
    return FallbackTransport(a, b, after_minutes=10, probe_minutes=5, clock=now), a, b, now


def test_a_timeout_is_never_retried_on_the_other_transport():
    t, sendgrid, smtp, now = fallback()
    t.state.active = False
    t.state.failing_since = (now.t - timedelta(minutes=30)).isoformat()
    sendgrid.script = [TransientSendError("timed out", unsure=["k0", "k1"])]
    results = t.send([msg(0), msg(1), msg(2)])
    by_key = {r.key: r for r in results}
    assert by_key["k0"].unknown and by_key["k1"].unknown  # may have gone out: never again
    assert by_key["k2"].ok and smtp.got == Counter({"r2@example.com": 1})
    assert t.state.active


def test_a_429_or_400_is_not_an_outage():
    t, sendgrid, smtp, now = fallback()
    for _ in range(3):
        sendgrid.script = [TransientSendError("429", status=429)]
        with pytest.raises(TransientSendError):
            t.send([msg(0)])
        now.t += timedelta(minutes=10)
    assert not t.state.active and t.state.failing_since is None and not smtp.got


def test_a_success_in_between_starts_the_count_again():
    t, sendgrid, smtp, now = fallback()
    sendgrid.script = [TransientSendError("500", status=500)]
    with pytest.raises(TransientSendError):
        t.send([msg(0)])
    now.t += timedelta(minutes=6)
    assert t.send([msg(0)])[0].provider_id == "sendgrid"
    now.t += timedelta(minutes=6)
    sendgrid.script = [TransientSendError("500", status=500)]
    with pytest.raises(TransientSendError):  # 12 minutes since the first, 0 in a row
        t.send([msg(1)])
    assert not t.state.active and not smtp.got


# -- the worker over a failing SendGrid and a real SMTP server ------------------------

@pytest.fixture
def fake():
    with FakeSendGrid() as f:
        yield f


@pytest.fixture
def smtp(tmp_path):
    with SMTPServer(tmp_path / "smtp-tls") as s:
        yield s


@pytest.fixture
def app_config(app_config, fake, smtp):
    return {**app_config, **smtp.config(), "MAIL_TRANSPORT": "sendgrid",
            "SENDGRID_API_KEY": API_KEY, "SENDGRID_API_HOST": fake.url, "SENDGRID_TIMEOUT": 5,
            "MAIL_FALLBACK": "smtp", "FALLBACK_AFTER": 10, "FALLBACK_PROBE_MINUTES": 5}


@pytest.fixture(autouse=True)
def _close_connection(app):
    yield
    app.extensions["funnel"].transport.inner.secondary.close()


def log_in(client) -> None:  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/admin/login")
    assert client.post("/admin/login", data={"email": ADMIN, "password": PASSWORD,
                                             "csrf_token": token}).status_code == 302


def copies(fake: FakeSendGrid, smtp: SMTPServer, email: str, subject: str) -> int:
    by_sendgrid = sum(1 for r in fake.accepted() if personalization_for(r, email)
                      and personalization_for(r, email).get("subject") == subject)
    return by_sendgrid + smtp.handler.times(email, subject)


def test_smtp_takes_over_and_hands_back_with_one_copy_each(app, client, db, clock, fake, smtp,
                                                           runner, caplog, admin):
    steps = [s.source.meta["subject"] for s in load_sequence(app.config["EMAILS_DIR"]).steps]
    people = [f"f{i}@example.com" for i in range(5)]
    for email in people:
        join(client, fake, email)
    worker = make_worker(app.extensions["funnel"])
    caplog.set_level(logging.WARNING, logger="funnel.transports.fallback")

    fake.script = [Reply(503, {}, {"errors": [{"message": "service unavailable"}]})] * 50
    report = worker.run_pass(clock.now)
    assert report.retried == 5 and report.sent == 0  # not yet: FALLBACK_AFTER is 10 minutes
    assert smtp.handler.counts() == Counter()
    clock.advance(minutes=11)
    report = worker.run_pass(clock.now)
    assert report.sent == 5
    assert "SMTP takes over" in caplog.text
    for email in people:
        assert smtp.handler.times(email, steps[0]) == 1
    # Shown: the dashboard and flask status say SMTP is sending, and why.
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    assert "SMTP is sending" in page and "503" in page
    assert "SMTP is sending" in runner.invoke(args=["status"]).output

    # A new worker process (a restart) carries on with SMTP, not with the failing SendGrid.
    before = len(fake.requests)
    db.rollback()
    clock.now = max(s.next_due_at for s in db.scalars(select(Subscriber)))
    fake.script = []  # SendGrid is healthy again, but is only tried every 5 minutes
    app.extensions["funnel"].transport.inner.state.active = False  # as a fresh process
    restarted = make_worker(app.extensions["funnel"])  # reads the saved state
    assert app.extensions["funnel"].transport.inner.state.active
    report = restarted.run_pass(clock.now)
    assert report.sent == 5 and len(fake.requests) == before + 1  # one probe, accepted
    assert "accepts mail again" in caplog.text
    log_in(client)  # days later: the admin session has ended
    assert "SendGrid is sending" in client.get("/admin/").get_data(as_text=True)
    db.rollback()
    for email in people:
        for subject in steps[:2]:
            assert copies(fake, smtp, email, subject) == 1, (email, subject)
        assert [d.state for d in db.scalars(select(Delivery).join(Subscriber).where(
            Subscriber.email == email, Delivery.kind == "drip"))] == ["sent", "sent"]
