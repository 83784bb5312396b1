"""The SendGrid webhook refuses any malformed signature header with a 403 before
it parses anything: no 500 from a 400-digit timestamp, no body ever read."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from funnel.models import DeliveryEvent
from tests.sendgrid_support import Signer, post_events

SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def app_config(app_config, signer):
    return {**app_config, "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def body() -> bytes:
    return json.dumps([{"event": "delivered", "sg_event_id": "e1", "email": "a@example.com",
                        "timestamp": 1}]).encode()


@pytest.mark.parametrize("headers", [
    {SIG: "AAAA", TS: "9" * 400},                      # used to be a 500 (int too large for float)
    {SIG: "AAAA", TS: "-" + "9" * 400},
    {SIG: "AAAA", TS: "1e9"},
    {SIG: "AAAA", TS: " 1764579600"},
    {SIG: "AAAA", TS: "١٧٦٤٥٧٩٦٠٠"},                     # Arabic-Indic digits: int() takes them
    {SIG: "A" * 5000, TS: "1764579600"},
    {SIG: "not base64!", TS: "1764579600"},
    {SIG: "", TS: "1764579600"},
    {TS: "1764579600"},
    {SIG: "AAAA"},
])
def test_bad_signature_headers_are_403_before_parsing(client, db, headers):
    resp = client.post("/webhooks/sendgrid", data=body(), headers=headers)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    db.rollback()
    assert db.scalar(select(func.count(DeliveryEvent.id))) == 0


def test_a_bad_header_is_refused_even_with_a_body_that_is_not_json(client):
    resp = client.post("/webhooks/sendgrid", data=b"\xff{not json",
                       headers={SIG: "AAAA", TS: "9" * 400})
    assert resp.status_code == 403


def test_a_good_signature_still_gets_in(client, signer, clock):
    # The negative control: a well-formed, signed request is not caught by the new checks.
    resp = post_events(client, signer, json.loads(body()), int(clock.now.timestamp()))
    assert resp.status_code == 200
