"""End to end over SendGrid's contract: people sign up and confirm, the whole
sequence goes out over the following weeks in batched requests that Prism (fed
SendGrid's OpenAPI file) finds nothing wrong with, and a signed bounce posted to
the webhook stops further mail to that address."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from funnel.core.sequence import load_sequence
from funnel.models import Subscriber
from funnel.runtime import make_worker
from tests.conftest import sign_up
from tests.sendgrid_support import (
    API_KEY,
    RecordingProxy,
    Signer,
    link_path,
    post_events,
    prism_url,
    run_sequence_out,
)

PEOPLE = {"ana@example.com": "Ana", "ben@example.com": "", "cleo@example.com": "Cléo O'Neil",
          "dev@example.com": "Dev & Co", "bounce@example.com": "Bo"}


@pytest.fixture
def proxy():
    with RecordingProxy(prism_url()) as p:
        yield p


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def app_config(app_config, proxy, signer):
    return {**app_config, "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": API_KEY,
            "SENDGRID_API_HOST": proxy.url, "SENDGRID_TIMEOUT": 10,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}


def test_the_whole_sequence_over_sendgrid_then_a_bounce_stops_it(app, client, db, clock,
                                                                   proxy, signer):
    steps = [s.slug for s in load_sequence(app.config["EMAILS_DIR"])]
    for email, name in PEOPLE.items():
        assert sign_up(client, email, name).status_code == 303
        confirm = next(e for e in reversed(proxy.mail()) if e.personalization_for(email))
        assert client.get(link_path(confirm.received_by(email)["text"], "confirm")).status_code == 200

    # Step 1 goes to everyone in one request.
    assert make_worker(app.extensions["funnel"]).run_pass(clock.now).sent == len(PEOPLE)
    first = proxy.mail()[-1]
    assert first.body["categories"] == [steps[0]]
    assert sorted(first.recipients()) == sorted(PEOPLE)

    # SendGrid reports that one of them bounced.
    bounced = first.personalization_for("bounce@example.com")
    resp = post_events(client, signer, [{
        "email": "bounce@example.com", "event": "bounce", "sg_event_id": "e2e-bounce-1",
        "timestamp": int(clock.now.timestamp()), "sg_message_id": "prism-1.filter",
        "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 mailbox unavailable",
        **bounced["custom_args"]}], int(clock.now.timestamp()))
    assert resp.status_code == 200 and resp.get_json()["recorded"] == 1

    run_sequence_out(app, clock, db)

    assert proxy.problems() == []  # not one contract violation, in any request
    received = Counter((email, e.body.get("categories", ["confirm"])[0])
                       for e in proxy.mail() for email in e.recipients())
    for email in PEOPLE:
        wanted = steps[:1] if email == "bounce@example.com" else steps
        assert [s for s in steps if received[(email, s)]] == wanted, email
        assert all(received[(email, s)] == 1 for s in wanted), email  # exactly once
    assert all(len(e.body["personalizations"]) == len(PEOPLE) - 1
               for e in proxy.mail() if e.body.get("categories") not in (None, [steps[0]]))

    # Each person's copy has their own working links, and provider ids were kept.
    db.rollback()
    composer = app.extensions["funnel"].composer
    for sub in db.scalars(select(Subscriber)):
        last = next(e for e in reversed(proxy.mail()) if e.personalization_for(sub.email))
        token = link_path(last.received_by(sub.email)["text"], "unsubscribe").rsplit("/", 1)[1]
        assert composer.tokens.load("unsubscribe", token) == sub.public_id
        assert all(d.state == "sent" and d.provider_id.startswith("prism-")
                   for d in sub.deliveries)
    bounced_sub = db.scalar(select(Subscriber).where(Subscriber.email == "bounce@example.com"))
    assert bounced_sub.status == "bounced" and "mailbox unavailable" in bounced_sub.status_reason
