"""The worker over SendGrid when SendGrid misbehaves: nothing lost, nothing twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.models import Delivery, Subscriber
from funnel.runtime import make_worker
from tests.conftest import sign_up
from tests.sendgrid_support import API_KEY, FakeSendGrid, Reply, link_path, received_by


@pytest.fixture
def fake():
    with FakeSendGrid() as f:
        yield f


@pytest.fixture
def app_config(app_config, fake):
    return {**app_config, "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": API_KEY,
            "SENDGRID_API_HOST": fake.url, "SENDGRID_TIMEOUT": 5}


@pytest.fixture
def slugs(app):
    return [s.slug for s in load_sequence(app.config["EMAILS_DIR"])]


def join(client, fake: FakeSendGrid, email: str) -> None:
    """Sign up and follow the confirmation link SendGrid was asked to deliver."""
    assert sign_up(client, email).status_code == 303
    text = received_by(fake.last_to(email), email)["text"]
    assert client.get(link_path(text, "confirm")).status_code == 200


def run(app, clock):  # type: ignore[no-untyped-def]
    return make_worker(app.extensions["funnel"]).run_pass(clock.now)


def deliveries(db, email: str) -> list[Delivery]:
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == email))
    return sorted((d for d in sub.deliveries if d.kind == "drip"), key=lambda d: d.id)


def test_429_is_retried_after_retry_after_and_sent_once(app, client, db, clock, fake, slugs):
    people = [f"r{i}@example.com" for i in range(3)]
    for email in people:
        join(client, fake, email)
    fake.script = [Reply(429, {"Retry-After": "600"})]
    report = run(app, clock)
    assert report.retried == 3 and report.sent == 0
    for email in people:
        [d] = deliveries(db, email)
        assert d.state == "retry" and "429" in d.error
        assert d.subscriber.next_due_at >= clock.now + timedelta(seconds=600)
    clock.advance(seconds=599)
    assert run(app, clock).sent == 0  # not before SendGrid said
    clock.advance(hours=1)
    assert run(app, clock).sent == 3
    for email in people:
        [d] = deliveries(db, email)
        assert d.state == "sent" and d.provider_id == f"fake-{len(fake.requests)}"
        assert fake.times_received(email, slugs[0]) == 1
    assert len(fake.accepted()[-1]["personalizations"]) == 3  # one request for all three


def test_a_failure_after_an_accepted_request_sends_nothing_twice(app, client, db, clock, fake,
                                                                 slugs):
    join(client, fake, "early@example.com")
    assert run(app, clock).sent == 1
    clock.now = deliveries(db, "early@example.com")[0].subscriber.next_due_at
    join(client, fake, "late@example.com")
    # One pass, two steps: early's step 2 is accepted, late's step 1 meets a 500.
    fake.script = [Reply(202), Reply(500, {}, {"errors": [{"message": "internal error"}]})]
    report = run(app, clock)
    assert (report.sent, report.retried) == (1, 1)
    assert [d.state for d in deliveries(db, "early@example.com")] == ["sent", "sent"]
    [late] = deliveries(db, "late@example.com")
    assert late.state == "retry"
    clock.now = late.subscriber.next_due_at
    run(app, clock)
    assert fake.times_received("early@example.com", slugs[1]) == 1
    assert fake.times_received("late@example.com", slugs[0]) == 1
    assert deliveries(db, "late@example.com")[0].state == "sent"


def test_a_400_fails_that_delivery_for_good_and_the_sequence_goes_on(app, client, db, clock,
                                                                     fake, slugs):
    join(client, fake, "bad@example.com")
    fake.script = [Reply(400, {}, {"errors": [{"message": "The content value must be a string",
                                               "field": "content.0.value"}]})]
    assert run(app, clock).failed == 1
    [d] = deliveries(db, "bad@example.com")
    assert d.state == "failed" and "The content value must be a string" in d.error


def test_refused_credentials_stop_the_worker_with_a_clear_error(app, client, db, clock, fake,
                                                               runner, slugs):
    join(client, fake, "auth@example.com")
    fake.script = [Reply(401, {}, {"errors": [
        {"message": "The provided authorization grant is invalid, expired, or revoked"}]})]
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 1
    assert "refused our credentials" in result.output and "authorization grant" in result.output
    assert deliveries(db, "auth@example.com") == []  # the intent was withdrawn
    result = runner.invoke(args=["worker", "--once"])  # the key is fixed
    assert result.exit_code == 0 and "sent 1" in result.output
    assert fake.times_received("auth@example.com", slugs[0]) == 1
