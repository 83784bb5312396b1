"""/metrics: Prometheus counters and backlog gauges, behind a bearer token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from funnel import create_app
from funnel.models import Subscriber
from funnel.transports import Message
from tests.conftest import sign_up, sign_up_and_confirm
from tests.production_support import metric
from tests.sendgrid_support import API_KEY, FakeSendGrid, Signer, post_events

TOKEN = "a-long-random-metrics-token"


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    return {**app_config, "METRICS_TOKEN": TOKEN, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def scrape(client) -> str:  # type: ignore[no-untyped-def]
    resp = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return resp.get_data(as_text=True)


def test_metrics_are_not_public(client, app):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 404
    app.config["METRICS_TOKEN"] = ""  # no token configured: nobody gets in
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_signups_confirmations_and_sends_are_counted(client, outbox, runner):
    before = scrape(client)
    sign_up_and_confirm(client, outbox, "ada@example.com")
    sign_up(client, "bob@example.com")
    sign_up(client, "bob@example.com")  # the same address again is not a new sign-up
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("funnel_signups_total") == 2
    assert delta("funnel_confirmations_total") == 1
    assert delta("funnel_sends_total", transport="outbox", result="sent") >= 1
    assert delta("funnel_sends_total", transport="outbox", result="failed") == 0


def test_backlog_gauges_follow_the_database(client, db, outbox, clock):
    sign_up_and_confirm(client, outbox, "cy@example.com")
    db.execute(update(Subscriber).values(next_due_at=clock.now - timedelta(hours=1)))
    db.commit()
    text_ = scrape(client)
    assert metric(text_, "funnel_due_backlog") == 1
    assert metric(text_, "funnel_oldest_due_age_seconds") == pytest.approx(3600)
    db.execute(update(Subscriber).values(next_due_at=None))
    db.commit()
    text_ = scrape(client)
    assert metric(text_, "funnel_due_backlog") == 0
    assert metric(text_, "funnel_oldest_due_age_seconds") == 0


def test_webhook_events_and_refusals_are_counted(client, signer, clock):
    before = scrape(client)
    now = int(clock.now.timestamp())
    assert sign_up(client, "x@example.com").status_code == 303
    event = {"email": "x@example.com", "event": "bounce", "sg_event_id": "ev-metrics-1",
             "timestamp": now, "reason": "550 no such user"}
    assert post_events(client, signer, [event], now).status_code in (200, 204)
    assert post_events(client, signer, [event], now).status_code in (200, 204)  # a repeat
    assert client.post("/webhooks/sendgrid", data=b"[]",
                       headers={"Content-Type": "application/json"}).status_code == 403
    after = scrape(client)
    assert (metric(after, "funnel_provider_events_total", kind="bounce")
            - metric(before, "funnel_provider_events_total", kind="bounce")) == 1
    assert (metric(after, "funnel_webhook_refusals_total", status="403")
            - metric(before, "funnel_webhook_refusals_total", status="403")) == 1


def test_provider_request_time_is_a_histogram(app_config):
    with FakeSendGrid() as fake:
        app = create_app({**app_config, "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": API_KEY,
                          "SENDGRID_API_HOST": fake.url})
        client = app.test_client()
        before = metric(scrape(client), "funnel_provider_request_seconds_count",
                        transport="sendgrid")
        transport = app.extensions["funnel"].transport
        msg = Message(key="k1", to="dee@example.com", subject="Hi", html="<p>Hi</p>", text="Hi",
                      sender="Run Stronger <plan@runstronger.example>",
                      date=datetime.now(UTC), message_id="<k1@runstronger.example>")
        assert transport.send([msg])[0].ok
        after = scrape(client)
        app.extensions["funnel"].engine.dispose()
    assert metric(after, "funnel_provider_request_seconds_count", transport="sendgrid") == before + 1
    assert metric(after, "funnel_provider_request_seconds_bucket", transport="sendgrid",
                  le="+Inf") >= 1
