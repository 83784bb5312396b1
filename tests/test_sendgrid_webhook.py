"""SendGrid's signed event webhook: bounces, complaints and unsubscribes stop the
mail at once; deliveries, opens and clicks are counted per step; nothing unsigned,
stale or replayed gets in."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from funnel.core.sequence import load_sequence
from funnel.models import ConsentRecord, Delivery, DeliveryEvent, Subscriber
from funnel.runtime import make_worker
from tests.conftest import sign_up, sign_up_and_confirm
from tests.sendgrid_support import Signer, post_events, run_sequence_out

KINDS = ["delivered", "open", "click", "bounce", "dropped", "spamreport", "unsubscribe",
         "group_unsubscribe"]


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    return {**app_config, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def subscriber(db, email: str) -> Subscriber:
    db.rollback()
    return db.scalar(select(Subscriber).where(Subscriber.email == email))


def first_delivery(db, email: str) -> Delivery:
    return subscriber(db, email).deliveries[0]


def event(kind: str, delivery: Delivery | None, n: int, clock, **extra) -> dict:
    return {"email": delivery.subscriber.email if delivery else "nobody@example.com",
            "event": kind, "sg_event_id": f"evt-{kind}-{n}", "timestamp": int(clock.now.timestamp()),
            "sg_message_id": "abc.filter0001", "delivery_id": delivery.public_id if delivery else "zz",
            **extra}


@pytest.fixture
def members(app, client, outbox, clock, db):
    """One confirmed subscriber per event kind, each sent step 1."""
    emails = {kind: f"{kind}@example.com" for kind in KINDS}
    for email in emails.values():
        sign_up_and_confirm(client, outbox, email)
    assert make_worker(app.extensions["funnel"]).run_pass(clock.now).sent == len(KINDS)
    return {kind: first_delivery(db, email) for kind, email in emails.items()}


def event_count(db) -> int:
    db.rollback()
    return db.scalar(select(func.count(DeliveryEvent.id)))


def test_a_batch_with_every_event_type(app, client, db, clock, outbox, signer, members):
    step1 = members["delivered"].step_slug
    unsubscribe_url = "http://localhost/unsubscribe/SECRET.TOKEN.x?utm=1"
    events = [
        event("delivered", members["delivered"], 1, clock),
        event("open", members["delivered"], 1, clock, useragent="Mozilla", ip="192.0.2.1"),
        event("click", members["delivered"], 1, clock, url=unsubscribe_url),
        event("processed", members["delivered"], 1, clock),  # a kind we do not use
        event("bounce", members["bounce"], 1, clock, type="bounce", status="5.1.1",
              reason="550 5.1.1 The email account does not exist"),
        event("dropped", members["dropped"], 1, clock, reason="Bounced Address"),
        event("spamreport", members["spamreport"], 1, clock),
        event("unsubscribe", members["unsubscribe"], 1, clock),
        event("group_unsubscribe", members["group_unsubscribe"], 1, clock, asm_group_id=42),
        event("delivered", None, 2, clock),  # not one of ours
    ]
    # No CSRF token: the signature is what lets SendGrid in.
    resp = post_events(client, signer, events, int(clock.now.timestamp()))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"recorded": 8, "duplicates": 0, "ignored": 1}

    expected = {"bounce": ("bounced", "550 5.1.1"), "dropped": ("bounced", "Bounced Address"),
                "spamreport": ("complained", "spamreport"),
                "unsubscribe": ("unsubscribed", "unsubscribe"),
                "group_unsubscribe": ("unsubscribed", "group 42")}
    for kind, (status, reason) in expected.items():
        sub = subscriber(db, f"{kind}@example.com")
        assert sub.status == status and reason in sub.status_reason and sub.next_due_at is None
    withdrawn = db.scalars(select(ConsentRecord).where(ConsentRecord.action == "withdraw")).all()
    assert {c.subscriber.email for c in withdrawn} == {"unsubscribe@example.com",
                                                       "group_unsubscribe@example.com"}
    assert subscriber(db, "unsubscribe@example.com").unsubscribed_at == clock.now

    counted = db.scalars(select(DeliveryEvent).where(
        DeliveryEvent.delivery_id == members["delivered"].id)).all()
    assert sorted((e.kind, e.step_slug) for e in counted) == [
        ("click", step1), ("delivered", step1), ("open", step1)]
    click = next(e for e in counted if e.kind == "click")
    assert click.detail == "http://localhost/unsubscribe/…?utm=1"  # the token is not kept
    assert all("192.0.2.1" not in (e.detail or "") for e in counted)

    # Weeks later only the subscriber who kept reading has had the rest of the plan.
    steps = load_sequence(app.config["EMAILS_DIR"])
    run_sequence_out(app, clock, db)
    assert len(outbox.to("delivered@example.com")) == 1 + len(steps)  # confirm + every step
    for kind in expected:
        assert len(outbox.to(f"{kind}@example.com")) == 2  # confirm + step 1, nothing after


@pytest.mark.parametrize("tamper", ["no headers", "other key", "changed body", "garbage"])
def test_unsigned_or_badly_signed_requests_are_refused(client, db, clock, signer, members, tamper):
    body = json.dumps([event("bounce", members["bounce"], 1, clock)]).encode()
    ts = int(clock.now.timestamp())
    headers = signer.headers(body, ts)
    if tamper == "no headers":
        headers = {"Content-Type": "application/json"}
    elif tamper == "other key":
        headers = Signer().headers(body, ts)
    elif tamper == "changed body":
        body = body.replace(b"bounce", b"delivered")
    else:
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    resp = client.post("/webhooks/sendgrid", data=body, headers=headers)
    assert resp.status_code == 403
    assert subscriber(db, "bounce@example.com").status == "confirmed"
    assert event_count(db) == 0


@pytest.mark.parametrize("age_seconds, status", [(600, 403), (-600, 403), (240, 200)])
def test_old_signatures_are_refused(client, db, clock, signer, members, age_seconds, status):
    ts = int(clock.now.timestamp()) - age_seconds
    resp = post_events(client, signer, [event("bounce", members["bounce"], 1, clock)], ts)
    assert resp.status_code == status
    assert subscriber(db, "bounce@example.com").status == (
        "bounced" if status == 200 else "confirmed")


def test_a_replayed_request_is_recorded_once(client, db, clock, signer, members):
    events = [event("delivered", members["delivered"], 1, clock),
              event("bounce", members["bounce"], 1, clock, reason="first reason")]
    body = json.dumps(events).encode()
    headers = signer.headers(body, int(clock.now.timestamp()))
    assert client.post("/webhooks/sendgrid", data=body, headers=headers).get_json()["recorded"] == 2
    clock.advance(seconds=30)
    again = client.post("/webhooks/sendgrid", data=body, headers=headers)
    assert again.status_code == 200
    assert again.get_json() == {"recorded": 0, "duplicates": 2, "ignored": 0}
    assert event_count(db) == 2
    # The same event inside a later batch is a duplicate too.
    later = [dict(events[1], reason="second reason")]
    assert post_events(client, signer, later, int(clock.now.timestamp())).get_json()[
        "duplicates"] == 1
    assert "first reason" in subscriber(db, "bounce@example.com").status_reason
    # Five minutes on, the captured request no longer passes at all.
    clock.advance(minutes=6)
    assert client.post("/webhooks/sendgrid", data=body, headers=headers).status_code == 403


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"event": "bounce"}',
    b'[1, 2]',
    "missing sg_event_id",
    "string timestamp",
])
def test_a_malformed_body_changes_nothing(client, db, clock, signer, members, body):
    good = event("bounce", members["bounce"], 1, clock)
    if body == "missing sg_event_id":
        bad = {k: v for k, v in event("spamreport", members["spamreport"], 1, clock).items()
               if k != "sg_event_id"}
        body = json.dumps([good, bad]).encode()
    elif body == "string timestamp":
        body = json.dumps([good, dict(event("open", members["delivered"], 1, clock),
                                      timestamp="yesterday")]).encode()
    resp = client.post("/webhooks/sendgrid", data=body,
                       headers=signer.headers(body, int(clock.now.timestamp())))
    assert resp.status_code == 400
    assert subscriber(db, "bounce@example.com").status == "confirmed"
    assert event_count(db) == 0


def test_a_bounced_confirmation_email_is_matched_by_address(client, db, clock, signer):
    sign_up(client, "typo@example.con")
    resp = post_events(client, signer, [{
        "email": "typo@example.con", "event": "bounce", "sg_event_id": "evt-confirm-1",
        "timestamp": int(clock.now.timestamp()), "message_key": "20261201T090000-confirm-ab12",
        "reason": "550 no such domain", "type": "bounce"}], int(clock.now.timestamp()))
    assert resp.status_code == 200
    sub = subscriber(db, "typo@example.con")
    assert sub.status == "bounced" and "no such domain" in sub.status_reason


def test_without_a_public_key_the_webhook_is_closed(app, client, clock, signer):
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = ""
    resp = post_events(client, signer, [], int(clock.now.timestamp()))
    assert resp.status_code == 503


def test_a_temporary_block_is_recorded_but_does_not_stop_mail(client, db, clock, signer, members):
    blocked = members["delivered"]
    resp = post_events(client, signer, [
        event("bounce", blocked, 9, clock, type="blocked", reason="421 try again later"),
    ], int(clock.now.timestamp()))
    assert resp.status_code == 200 and resp.get_json()["recorded"] == 1
    sub = subscriber(db, "delivered@example.com")
    assert sub.status == "confirmed" and sub.next_due_at is not None
    kinds = db.scalars(select(DeliveryEvent.kind).where(DeliveryEvent.delivery_id == blocked.id))
    assert list(kinds) == ["blocked"]
