"""Outbound webhooks: registered, written with the event, signed, retried, scrubbed."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from funnel.hooks import manage
from funnel.hooks.dispatch import Dispatcher, HookSettings
from funnel.hooks.secret_box import box_from_config
from funnel.models import Subscriber, WebhookEndpoint, WebhookMessage
from funnel.subscribers import actions as subscribers
from funnel.subscribers import privacy, provider_events
from tests.conftest import sign_up_and_confirm
from tests.webhook_support import Reply, start_receiver

ALL = ["all"]


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WEBHOOKS_ALLOW_PRIVATE": True, "WEBHOOKS_TIMEOUT": 1.0}


@pytest.fixture
def receiver():
    rec, server = start_receiver()
    yield rec
    server.shutdown()
    server.server_close()


def add(app, url: str, events=ALL) -> WebhookEndpoint:
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        return manage.add_endpoint(s, url, events, now=rt.clock(), allow_private=True,
                                   box=box_from_config(app.config))


def deliver(app, now=None, **settings):
    rt = app.extensions["funnel"]
    hook_settings = HookSettings(**{**HookSettings.from_config(app.config).__dict__, **settings})
    return Dispatcher(rt.sessions, hook_settings).run(now or rt.clock())


def messages(db) -> list[WebhookMessage]:
    db.rollback()
    db.expunge_all()
    return list(db.scalars(select(WebhookMessage).order_by(WebhookMessage.id)))


def new_subscriber(app, email: str, status: str = "confirmed") -> Subscriber:
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        sub = subscribers.subscribe(s, email=email, first_name="Sam", timezone="Europe/London",
                                 meta=subscribers.SignupMeta(), now=rt.clock())
        if status == "confirmed":
            sub.status, sub.confirmed_at = "confirmed", rt.clock()
            s.commit()
        return sub


# -- registering -----------------------------------------------------------------

def test_cli_adds_lists_and_removes_endpoints(runner, receiver):
    result = runner.invoke(args=["webhooks", "add", receiver.url, "--events",
                                 "subscriber.created,subscriber.erased"])
    assert result.exit_code == 0, result.output
    assert "whsec_" in result.output
    listed = runner.invoke(args=["webhooks", "list"]).output
    assert receiver.url in listed and "subscriber.created subscriber.erased" in listed
    assert runner.invoke(args=["webhooks", "remove", "1"]).exit_code == 0
    assert "no webhook endpoints" in runner.invoke(args=["webhooks", "list"]).output


def test_cli_refuses_unknown_events_and_changes_nothing(runner, receiver):
    result = runner.invoke(args=["webhooks", "add", receiver.url, "--events", "subscriber.hacked"])
    assert result.exit_code != 0 and "unknown event 'subscriber.hacked'" in result.output
    assert "no webhook endpoints" in runner.invoke(args=["webhooks", "list"]).output


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook",
    "http://192.168.0.10/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook", "http://[fe80::1]/hook", "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook", "http://100.64.0.1/hook",
])
def test_private_loopback_and_link_local_urls_are_refused(app, db, url):
    with (pytest.raises(manage.EndpointError, match="loopback, private or link-local"),
          Session(app.extensions["funnel"].engine) as s):
            manage.add_endpoint(s, url, ALL, now=app.extensions["funnel"].clock(),
                                allow_private=False, box=box_from_config(app.config))
    assert db.scalars(select(WebhookEndpoint)).all() == []


@pytest.mark.parametrize("url, problem", [
    ("file:///etc/passwd", "must start with https://"),
    ("gopher://example.com/", "must start with https://"),
    ("https://user:pw@example.com/hook", "no user name or password"),
    ("https://", "no host name"),
    ("https://example.com/a b", "spaces or control characters"),
    ("https://example.com:99999/", "not a usable URL"),
])
def test_malformed_urls_are_refused(app, url, problem):
    with (Session(app.extensions["funnel"].engine) as s,
          pytest.raises(manage.EndpointError, match=problem)):
            manage.add_endpoint(s, url, ALL, now=app.extensions["funnel"].clock(),
                                allow_private=True, box=box_from_config(app.config))


def test_a_url_registered_in_development_is_not_requested_without_the_setting(app, db, receiver):
    add(app, receiver.url)
    new_subscriber(app, "ssrf@example.com", status="pending")
    report = deliver(app, allow_private=False)
    assert report.retrying == 1 and receiver.requests == []
    [msg] = messages(db)
    assert msg.state == "pending" and "private" in msg.error


# -- the outbox is written with the event ----------------------------------------------

def test_outbox_rows_commit_and_roll_back_with_the_event(app, db, receiver):
    add(app, receiver.url)
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        s.add(Subscriber(email="gone@example.com", status="pending", created_at=rt.clock(),
                         timezone="UTC"))
        s.flush()
        assert s.scalars(select(WebhookMessage)).all()  # written in the same transaction
        s.rollback()
    assert messages(db) == []  # rolled back together: nothing announced that did not happen
    new_subscriber(app, "kept@example.com", status="pending")
    assert [m.event_type for m in messages(db)] == ["subscriber.created"]


def test_imported_subscribers_are_announced_too(app, db, receiver):
    from funnel.importing import importer

    add(app, receiver.url, ["subscriber.created"])
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        importer.import_rows(s, [(2, {"email": "imp@example.com"}), (3, {"email": "bad"})],
                             confirmed=True, now=rt.clock())
    [msg] = messages(db)
    data = json.loads(msg.payload)["data"]
    assert (data["email"], data["status"]) == ("imp@example.com", "confirmed")


def test_only_the_chosen_events_are_queued(app, db, receiver):
    add(app, receiver.url, ["subscriber.confirmed"])
    new_subscriber(app, "one@example.com", status="pending")
    assert messages(db) == []
    new_subscriber(app, "two@example.com", status="confirmed")
    assert [m.event_type for m in messages(db)] == ["subscriber.confirmed"]


# -- delivery ------------------------------------------------------------------------

def test_each_event_arrives_exactly_as_signed(app, client, db, outbox, receiver, clock):
    endpoint = add(app, receiver.url)
    rt = app.extensions["funnel"]
    sign_up_and_confirm(client, outbox, "hooked@example.com", "Hana")
    from funnel.runtime import make_worker

    make_worker(rt).run_pass(clock.now)  # step 1 of the sequence goes out: email.sent
    with rt.sessions() as s:
        sub = s.scalar(select(Subscriber).where(Subscriber.email == "hooked@example.com"))
        subscribers.unsubscribe(s, sub, now=clock.now, reason="test")
    new_subscriber(app, "bouncy@example.com")
    new_subscriber(app, "angry@example.com")
    with rt.sessions() as s:
        provider_events.record_events(s, [
            {"event": "bounce", "sg_event_id": "e1", "timestamp": 1764579600,
             "email": "bouncy@example.com", "type": "bounce"},
            {"event": "spamreport", "sg_event_id": "e2", "timestamp": 1764579600,
             "email": "angry@example.com"},
        ], clock.now)
    new_subscriber(app, "erased@example.com")
    with rt.sessions() as s:
        privacy.erase(s, privacy.find_by_email(s, "erased@example.com"), clock.now)
    deliver(app)  # the worker's pass above already sent what was queued by then
    live = [m for m in messages(db) if m.state != "scrubbed"]
    got = receiver.wait_for(len(live))
    assert len(got) == len(live)
    kinds = []
    for r in got:
        payload = r.verify(endpoint.plain_secret)  # raises unless signed with this secret
        assert json.loads(r.body) == payload
        assert r.headers["webhook-id"].startswith("msg_")
        assert r.headers["Content-Type"] == "application/json"
        kinds.append(payload["type"])
    for kind in ("subscriber.created", "subscriber.confirmed", "email.sent",
                 "subscriber.unsubscribed", "subscriber.bounced", "subscriber.complained",
                 "subscriber.erased"):
        assert kind in kinds, kinds
    sent = next(json.loads(r.body) for r in got if json.loads(r.body)["type"] == "email.sent")
    assert sent["data"]["subscriber"]["email"] == "hooked@example.com"
    assert sent["data"]["email"] == "lateral-hip-stretch"
    ids = {r.headers["webhook-id"] for r in got}
    assert len(ids) == len(got)  # one id per message
    # Negative control: another secret does not verify.
    with pytest.raises(Exception, match="No matching signature"):
        got[0].verify(manage.new_secret())
    assert all(m.state == "delivered" for m in live)
    # Delivered once: another pass sends nothing.
    assert deliver(app).attempted == 0


def test_retried_after_a_500_and_a_timeout_with_the_same_id(app, db, receiver, clock):
    endpoint = add(app, receiver.url, ["subscriber.created"])
    new_subscriber(app, "retry@example.com", status="pending")
    receiver.reply(Reply(status=500, body=b"boom"), Reply(delay=3.0))  # then the default 200
    assert deliver(app).retrying == 1
    [msg] = messages(db)
    assert (msg.state, msg.response_status, msg.response_body) == ("pending", 500, "boom")
    assert deliver(app).attempted == 0  # not before its backoff
    clock.advance(seconds=10)
    started = time.monotonic()
    assert deliver(app).retrying == 1
    assert time.monotonic() - started < 2.5  # the 1 s timeout held
    [msg] = messages(db)
    assert "timed out" in msg.error
    clock.advance(minutes=6)
    assert deliver(app).delivered == 1
    got = receiver.wait_for(3)
    assert len(got) == 3 and len({r.headers["webhook-id"] for r in got}) == 1
    assert [r.body for r in got] == [got[0].body] * 3
    for r in got:
        r.verify(endpoint.plain_secret)
    [msg] = messages(db)
    assert (msg.state, msg.attempts) == ("delivered", 3)


def test_gives_up_after_a_day_and_disables_the_endpoint_with_a_notice(app, db, receiver, clock):
    add(app, receiver.url, ["subscriber.created"])
    receiver.default = Reply(status=503)
    new_subscriber(app, "never@example.com", status="pending")
    for _ in range(40):
        deliver(app)
        [msg] = messages(db)
        if msg.state != "pending":
            break
        clock.now = max(clock.now, msg.next_attempt_at)
    assert msg.state == "failed" and msg.error == "HTTP 503"
    assert 6 <= msg.attempts <= 9  # the Standard Webhooks schedule over 24 hours
    db.rollback()
    endpoint = db.scalar(select(WebhookEndpoint))
    assert endpoint.state == "disabled" and "every attempt failed" in endpoint.disabled_reason
    # Events while disabled are not queued for it.
    new_subscriber(app, "later@example.com", status="pending")
    assert len(messages(db)) == 1


def test_response_size_and_time_are_capped(app, db, receiver):
    add(app, receiver.url, ["subscriber.created"])
    receiver.reply(Reply(body=b"x" * 5_000_000))
    new_subscriber(app, "big@example.com", status="pending")
    started = time.monotonic()
    assert deliver(app, max_response_bytes=16384).delivered == 1
    assert time.monotonic() - started < 3
    [msg] = messages(db)
    assert len(msg.response_body) == 1000


def test_erasure_scrubs_what_has_not_gone_out(app, db, receiver, clock):
    add(app, receiver.url)
    receiver.default = Reply(status=500)
    new_subscriber(app, "erase.me@example.com")
    deliver(app)  # fails: the messages wait, holding the address
    assert any("erase.me@example.com" in m.payload for m in messages(db))
    rt = app.extensions["funnel"]
    with rt.sessions() as s:
        privacy.erase(s, privacy.find_by_email(s, "erase.me@example.com"), clock.now)
    rows = messages(db)
    assert not any("erase.me@example.com" in m.payload for m in rows)
    assert {m.state for m in rows if m.event_type != "subscriber.erased"} == {"scrubbed"}
    receiver.default = Reply(status=200)
    receiver.requests.clear()
    clock.advance(hours=1)
    deliver(app)
    got = receiver.wait_for(1)
    assert [json.loads(r.body)["type"] for r in got] == ["subscriber.erased"]
    assert not any(b"erase.me" in r.body for r in got)


def test_the_worker_pass_delivers_webhooks(app, runner, db, receiver):
    add(app, receiver.url, ["subscriber.created"])
    new_subscriber(app, "worker@example.com", status="pending")
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert len(receiver.wait_for(1)) == 1
    assert messages(db)[0].state == "delivered"


def test_a_finished_broadcast_is_announced_once_with_its_figures(app, runner, db, receiver, clock):
    from funnel.models import Broadcast
    from tests.newsletter_support import add as add_reader
    from tests.newsletter_support import quiet_plan, run_worker

    endpoint = add(app, receiver.url, ["broadcast.finished"])
    quiet_plan(db, __import__("pathlib").Path(app.config["EMAILS_DIR"]))
    for name in ("ann", "bob", "cy"):
        add_reader(db, f"{name}@example.com", now=clock.now)
    assert runner.invoke(args=["broadcast", "send", "first-issue"]).exit_code == 0
    assert messages(db) == []  # scheduled is not finished
    run_worker(runner)
    run_worker(runner)  # a second pass finds it finished already: no second event
    db.rollback()
    assert db.scalar(select(Broadcast.status)) == "sent"
    [msg] = messages(db)
    assert msg.event_type == "broadcast.finished" and msg.subscriber_id is None
    deliver(app)
    [got] = receiver.wait_for(1)
    data = got.verify(endpoint.plain_secret)["data"]
    assert (data["slug"], data["audience"], data["sent"], data["failed"]) == ("first-issue", 3, 3, 0)
    assert data["finished_at"] and data["subject"]
