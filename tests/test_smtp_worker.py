"""The worker over SMTP when the server misbehaves: the same guarantees as over
SendGrid (tests/test_sendgrid_worker.py): nothing lost, nothing twice."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.models import Delivery, Subscriber
from funnel.runtime import make_worker
from tests.conftest import press_confirm, sign_up
from tests.smtp_support import DROP, SMTPServer


@pytest.fixture
def smtp(tmp_path):
    with SMTPServer(tmp_path / "smtp-tls") as s:
        yield s


@pytest.fixture
def app_config(app_config, smtp):
    return {**app_config, **smtp.config()}


@pytest.fixture(autouse=True)
def _close_connection(app):
    yield
    app.extensions["funnel"].transport.close()


@pytest.fixture
def steps(app):
    return {s.slug: s for s in load_sequence(app.config["EMAILS_DIR"])}


def join(client, smtp: SMTPServer, email: str) -> None:
    """Sign up and follow the confirmation link that came over SMTP."""
    assert sign_up(client, email).status_code == 303
    text = smtp.handler.last_to(email).get_body(("plain",)).get_content()
    m = re.search(r"https?://[^/\s]+(/confirm/[A-Za-z0-9._\-]+)", text)
    assert m, text
    assert press_confirm(client, m.group(1)).status_code == 200


def run(app, clock):  # type: ignore[no-untyped-def]
    return make_worker(app.extensions["funnel"]).run_pass(clock.now)


def drip(db, email: str) -> list[Delivery]:
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
    return sorted((d for d in sub.deliveries if d.kind == "drip"), key=lambda d: d.id)


def first_subject(steps) -> str:  # type: ignore[no-untyped-def]
    return next(iter(steps.values())).subject


def test_a_step_goes_out_once_over_one_reused_connection(app, client, db, clock, smtp, steps):
    people = [f"r{i}@example.com" for i in range(4)]
    for email in people:
        join(client, smtp, email)
    report = run(app, clock)
    assert report.sent == 4
    for email in people:
        [d] = drip(db, email)
        assert d.state == "sent" and d.provider_id.startswith("Q")
        assert smtp.handler.counts()[email] == 2  # the confirmation and the first step
    # Four confirmations and four steps, over the one connection the app keeps.
    assert len(smtp.handler.peers()) == 1


def test_4xx_is_retried_then_5xx_fails_for_good_and_the_sequence_goes_on(app, client, db, clock,
                                                                       smtp, steps):
    join(client, smtp, "soft@example.com")
    smtp.handler.rcpt_script["soft@example.com"] = ["452 4.2.2 mailbox full",
                                                    "550 5.1.1 mailbox gone"]
    report = run(app, clock)
    assert (report.sent, report.retried) == (0, 1)
    [d] = drip(db, "soft@example.com")
    assert d.state == "retry" and "452" in d.error
    clock.now = d.subscriber.next_due_at
    assert run(app, clock).failed == 1
    [d] = drip(db, "soft@example.com")
    assert d.state == "failed" and "550 5.1.1 mailbox gone" in d.error
    assert smtp.handler.counts()["soft@example.com"] == 1  # the confirmation only
    # The next step is still planned: one bad answer does not end the sequence.
    assert d.subscriber.next_due_at is not None


def test_a_connection_dropped_mid_batch_loses_nothing_and_sends_nothing_twice(
        app, client, db, clock, smtp, steps):
    people = [f"d{i}@example.com" for i in range(6)]
    for email in people:
        join(client, smtp, email)
    before = smtp.handler.counts()
    # One server drop before a message's data, one after it (queued, never acknowledged).
    smtp.handler.rcpt_script["d2@example.com"] = [DROP]
    run(app, clock)
    smtp.handler.data_script["d4@example.com"] = [DROP]
    for _ in range(5):
        db.rollback()
        due = [d.subscriber.next_due_at for e in people for d in drip(db, e)
               if d.state == "retry"]
        if not due:
            break
        clock.now = max(due)
        run(app, clock)
    got = smtp.handler.counts() - before
    states = {e: [d.state for d in drip(db, e)] for e in people}
    for email in people:
        assert got[email] == 1, (email, got, states)  # every reader once, never twice
    unknown = [e for e, s in states.items() if s == ["unknown"]]
    assert all(states[e] == ["sent"] for e in people if e not in unknown)
    # A message the server took but never acknowledged is not sent again.
    assert unknown == ["d4@example.com"]


def test_refused_credentials_stop_the_worker_with_a_clear_error(app, client, db, clock, smtp,
                                                               runner):
    join(client, smtp, "auth@example.com")
    app.extensions["funnel"].transport.close()
    transport = app.extensions["funnel"].transport.inner
    transport.password = "wrong"
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 1 and "refused our credentials" in result.output
    assert drip(db, "auth@example.com") == []  # the intent was withdrawn
    transport.password = "s3cret pass/word"  # fixed
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0 and "sent 1" in result.output
    assert smtp.handler.counts()["auth@example.com"] == 2
